//! The fixture: a tiny standalone crate where `auth::validate_user` is defined once and called
//! from four modules. Its files are embedded in the binary, so the demo runs from any directory.

use std::path::Path;

use crate::error::DemoError;

/// The name renamed by the task.
pub const OLD_NAME: &str = "validate_user";
/// The name it is renamed to.
pub const NEW_NAME: &str = "authenticate_user";
/// The module that defines [`OLD_NAME`].
pub const DEFINITION: &str = "src/auth.rs";
/// Every module that calls it, in the order the planner finds them: the spec's v1 lists the
/// first three, v2 all four.
pub const CALLERS: [&str; 4] = [
    "src/login.rs",
    "src/api.rs",
    "src/admin.rs",
    "src/billing.rs",
];

/// Every file of the fixture crate: (path relative to the crate root, contents).
pub const FILES: [(&str, &str); 7] = [
    ("Cargo.toml", include_str!("../fixture/Cargo.toml")),
    ("src/lib.rs", include_str!("../fixture/src/lib.rs")),
    ("src/auth.rs", include_str!("../fixture/src/auth.rs")),
    ("src/login.rs", include_str!("../fixture/src/login.rs")),
    ("src/api.rs", include_str!("../fixture/src/api.rs")),
    ("src/admin.rs", include_str!("../fixture/src/admin.rs")),
    ("src/billing.rs", include_str!("../fixture/src/billing.rs")),
];

/// The contents of the fixture file at `path`, if there is one.
pub fn contents(path: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, text)| *text)
}

/// Write a fresh copy of the fixture into `dir` (created; it must not exist yet).
pub fn write_to(dir: &Path) -> Result<(), DemoError> {
    std::fs::create_dir(dir).map_err(DemoError::io("create the fixture directory", dir))?;
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(DemoError::io("create", parent))?;
        }
        std::fs::write(&path, text).map_err(DemoError::io("write", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_and_every_caller_mention_the_old_name() {
        for path in std::iter::once(DEFINITION).chain(CALLERS) {
            let text = contents(path).unwrap_or_default();
            assert!(text.contains(OLD_NAME), "{path}");
        }
        assert!(
            !contents("src/lib.rs")
                .unwrap_or_default()
                .contains(OLD_NAME)
        );
    }
}
