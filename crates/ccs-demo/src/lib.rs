//! `ccs demo refactor`: the story of agent-coherence, for real.
//!
//! A planner and an executor run as separate processes sharing a segment. A small Rust crate
//! ships as a fixture ([`fixture`]): `validate_user` is defined in `src/auth.rs` and called from
//! four modules. The planner writes v1 of the task spec (rename `validate_user` to
//! `authenticate_user` in its module and three callers); the executor reads v1 and starts work;
//! the planner finds the fourth caller and writes v2. Just before it commits, the executor
//! reads the spec again (or not), applies the renames of the spec it holds to a fresh copy of
//! the fixture, and runs a real `cargo check` on it.
//!
//! | [`Variant`] | commit-time read | spec used | build |
//! |---|---|---|---|
//! | `context-cache` | none: the copy in its context | v1 | fails: `billing.rs` still calls `validate_user` |
//! | `no-invalidation` | HIT (invalidation switched off on the segment) | v1 | fails |
//! | `with` | MISS: the planner's write invalidated the copy | v2 | passes |
//!
//! ```no_run
//! use std::ffi::OsString;
//! // In `main`: a re-executed role process runs its role and exits.
//! let args: Vec<OsString> = std::env::args_os().collect();
//! if args.get(1).is_some_and(|a| a == "--demo-role") {
//!     std::process::exit(match ccs_demo::role_main(args[2..].iter().cloned()) {
//!         code if code == std::process::ExitCode::SUCCESS => 0,
//!         _ => 1,
//!     });
//! }
//! let exe = std::env::current_exe()?;
//! let verdicts = ccs_demo::run(&ccs_demo::Variant::ALL, &exe, &["--demo-role".into()], &mut std::io::stdout())?;
//! assert!(verdicts.iter().all(ccs_demo::Verdict::as_expected));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod error;
pub mod fixture;
mod roles;
mod run;
mod spec;
mod verdict;

pub use error::DemoError;
pub use roles::role_main;
pub use run::run;
pub use spec::{TaskSpec, rename_word};
pub use verdict::{Build, CommitRead, Variant, Verdict, summary_table};
