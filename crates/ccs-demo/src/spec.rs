//! The task spec the planner writes and the executor follows: a rename and the files to apply
//! it to. A small line-based text document, so `ccs get SEG task/spec` shows it as is:
//!
//! ```text
//! task: rename validate_user to authenticate_user in its module and its callers
//! rename: validate_user -> authenticate_user
//! file: src/auth.rs
//! file: src/login.rs
//! ```
//!
//! The executor applies the rename, as a whole-word textual replacement, to exactly the listed
//! files and to no other.

use std::path::Path;

use crate::error::DemoError;
use crate::fixture;

/// A parsed task spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// The identifier to rename.
    pub old: String,
    /// Its new name.
    pub new: String,
    /// The files to rename it in, relative to the fixture crate's root.
    pub files: Vec<String>,
}

impl TaskSpec {
    /// The planner's first spec: the definition and the three callers it found first.
    pub fn v1() -> TaskSpec {
        TaskSpec::with_callers(3)
    }

    /// The planner's second spec: the definition and all four callers.
    pub fn v2() -> TaskSpec {
        TaskSpec::with_callers(fixture::CALLERS.len())
    }

    fn with_callers(callers: usize) -> TaskSpec {
        let files = std::iter::once(fixture::DEFINITION)
            .chain(fixture::CALLERS.into_iter().take(callers))
            .map(str::to_owned)
            .collect();
        TaskSpec {
            old: fixture::OLD_NAME.to_owned(),
            new: fixture::NEW_NAME.to_owned(),
            files,
        }
    }

    /// The spec as the document stored in the segment.
    pub fn render(&self) -> String {
        let mut text = format!(
            "task: rename {} to {} in its module and its callers\nrename: {} -> {}\n",
            self.old, self.new, self.old, self.new
        );
        for file in &self.files {
            text.push_str("file: ");
            text.push_str(file);
            text.push('\n');
        }
        text
    }

    /// Parse a spec document. Refuses unknown lines, a missing or repeated rename, names that
    /// are not identifiers, and files that are not part of the fixture.
    pub fn parse(text: &str) -> Result<TaskSpec, DemoError> {
        let mut rename = None;
        let mut files = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |why: &str| DemoError::BadSpec(format!("line {}: {why}: `{line}`", number + 1));
            let (field, value) = line
                .split_once(':')
                .ok_or_else(|| bad("expected `field: value`"))?;
            let value = value.trim();
            match field.trim() {
                "task" => {}
                "rename" => {
                    let (old, new) = value
                        .split_once("->")
                        .ok_or_else(|| bad("expected `rename: OLD -> NEW`"))?;
                    let (old, new) = (old.trim(), new.trim());
                    if !is_identifier(old) || !is_identifier(new) {
                        return Err(bad("the rename must be between two identifiers"));
                    }
                    if rename.replace((old.to_owned(), new.to_owned())).is_some() {
                        return Err(bad("a second rename"));
                    }
                }
                "file" => {
                    if fixture::contents(value).is_none() {
                        return Err(bad("not a file of the fixture crate"));
                    }
                    if files.iter().any(|f| f == value) {
                        return Err(bad("a file listed twice"));
                    }
                    files.push(value.to_owned());
                }
                _ => return Err(bad("unknown field")),
            }
        }
        let (old, new) = rename.ok_or_else(|| DemoError::BadSpec("no `rename:` line".into()))?;
        Ok(TaskSpec { old, new, files })
    }

    /// How many of the fixture's callers the spec lists.
    pub fn callers(&self) -> usize {
        fixture::CALLERS
            .iter()
            .filter(|caller| self.files.iter().any(|f| f == *caller))
            .count()
    }

    /// The listed files' names without their directory, for narration: `auth.rs, login.rs`.
    pub fn file_names(&self) -> String {
        let names: Vec<&str> = self
            .files
            .iter()
            .map(|f| f.rsplit('/').next().unwrap_or(f))
            .collect();
        names.join(", ")
    }

    /// Apply the rename to the listed files of the fixture copy at `root`. Returns how many
    /// occurrences were replaced.
    pub fn apply(&self, root: &Path) -> Result<usize, DemoError> {
        let mut replaced = 0;
        for file in &self.files {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).map_err(DemoError::io("read", &path))?;
            let (renamed, count) = rename_word(&text, &self.old, &self.new);
            replaced += count;
            std::fs::write(&path, renamed).map_err(DemoError::io("write", &path))?;
        }
        Ok(replaced)
    }
}

fn is_identifier(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(is_word_char)
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Replace every whole-word occurrence of `old` in `text` by `new` (a word: a maximal run of
/// ASCII letters, digits and `_`). Returns the new text and the number of replacements.
///
/// ```
/// let (text, n) = ccs_demo::rename_word("validate_user(x); validate_users; validate_user", "validate_user", "auth");
/// assert_eq!((text.as_str(), n), ("auth(x); validate_users; auth", 2));
/// ```
pub fn rename_word(text: &str, old: &str, new: &str) -> (String, usize) {
    if old.is_empty() {
        return (text.to_owned(), 0);
    }
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(at) = rest.find(old) {
        let before = rest[..at].chars().next_back().or(previous);
        let after = rest[at + old.len()..].chars().next();
        let whole = !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char);
        let end = if whole { at + old.len() } else { at + 1 };
        let end = (end..=rest.len())
            .find(|&i| rest.is_char_boundary(i))
            .unwrap_or(rest.len());
        if whole {
            out.push_str(&rest[..at]);
            out.push_str(new);
            count += 1;
        } else {
            out.push_str(&rest[..end]);
        }
        previous = rest[..end].chars().next_back().or(previous);
        rest = &rest[end..];
    }
    out.push_str(rest);
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_list_the_callers() {
        let v1 = TaskSpec::v1();
        let v2 = TaskSpec::v2();
        assert_eq!((v1.callers(), v2.callers()), (3, 4));
        assert_eq!(TaskSpec::parse(&v1.render()).ok(), Some(v1.clone()));
        assert_eq!(TaskSpec::parse(&v2.render()).ok(), Some(v2));
        assert_eq!(v1.file_names(), "auth.rs, login.rs, api.rs, admin.rs");
    }

    #[test]
    fn bad_specs_are_refused() {
        for text in [
            "",
            "rename: a b\n",
            "rename: a -> b\nrename: a -> c\n",
            "rename: a -> 1b\n",
            "rename: a -> b\nfile: ../etc/passwd\n",
            "rename: a -> b\nfile: src/auth.rs\nfile: src/auth.rs\n",
            "rename: a -> b\nowner: me\n",
        ] {
            assert!(TaskSpec::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn renames_whole_words_only() {
        let cases = [
            ("validate_user", ("X", 1)),
            ("a.validate_user()", ("a.X()", 1)),
            (
                "validate_users validate_user_",
                ("validate_users validate_user_", 0),
            ),
            ("my_validate_user validate_user", ("my_validate_user X", 1)),
            (
                "validate_uservalidate_user",
                ("validate_uservalidate_user", 0),
            ),
            ("é validate_user é", ("é X é", 1)),
            ("xvalidate_user", ("xvalidate_user", 0)),
        ];
        for (text, (expected, n)) in cases {
            assert_eq!(
                rename_word(text, "validate_user", "X"),
                (expected.to_owned(), n),
                "{text}"
            );
        }
    }
}
