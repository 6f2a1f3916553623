//! The three variants of the story, and what each one ends with: the executor's commit, as it
//! writes it to `task/result`, and the verdict the demo prints.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::DemoError;
use crate::fixture;

/// How the executor reads the task spec just before it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// With agent-coherence: the planner's write invalidated the executor's copy, so its
    /// commit-time read is a MISS that fetches v2. The build passes.
    With,
    /// Invalidation switched off on the segment: the commit-time read is a HIT on the stale
    /// v1 copy. The build fails.
    NoInvalidation,
    /// No commit-time read at all: the executor commits from the v1 in its context. The build
    /// fails.
    ContextCache,
}

impl Variant {
    /// Every variant, in the order `all` runs them: the two failures, then the fix.
    pub const ALL: [Variant; 3] = [
        Variant::ContextCache,
        Variant::NoInvalidation,
        Variant::With,
    ];

    /// The variant's name on the command line: `with`, `no-invalidation`, `context-cache`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::With => "with",
            Variant::NoInvalidation => "no-invalidation",
            Variant::ContextCache => "context-cache",
        }
    }

    /// One line on what the variant shows.
    pub fn description(self) -> &'static str {
        match self {
            Variant::With => {
                "agent-coherence: the executor re-reads the spec at commit time; the planner's write has invalidated its copy"
            }
            Variant::NoInvalidation => {
                "invalidation switched off: the executor re-reads the spec at commit time, but its stale copy still looks valid"
            }
            Variant::ContextCache => {
                "the executor never re-reads the spec; it commits from the copy in its context"
            }
        }
    }

    /// Whether the story expects this variant's build to pass (only [`Variant::With`]).
    pub fn expects_pass(self) -> bool {
        self == Variant::With
    }

    /// Parse `with`, `no-invalidation`, `context-cache`, or `all` (every variant, in the
    /// order of [`Variant::ALL`]).
    pub fn parse_list(text: &str) -> Result<Vec<Variant>, DemoError> {
        match text {
            "all" => Ok(Variant::ALL.to_vec()),
            one => Ok(vec![one.parse()?]),
        }
    }
}

impl FromStr for Variant {
    type Err = DemoError;

    fn from_str(text: &str) -> Result<Variant, DemoError> {
        Variant::ALL
            .into_iter()
            .find(|variant| variant.name() == text)
            .ok_or_else(|| {
                DemoError::Usage(format!(
                    "unknown variant `{text}`; expected with, no-invalidation, context-cache or all"
                ))
            })
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The executor's read of the task spec just before it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitRead {
    /// It did not re-read: it used the copy it already had.
    Skipped,
    /// It re-read, and its copy was still valid: nothing fetched.
    Hit,
    /// It re-read, its copy was invalid, and the current version was fetched.
    Miss,
}

impl CommitRead {
    fn word(self) -> &'static str {
        match self {
            CommitRead::Skipped => "none",
            CommitRead::Hit => "hit",
            CommitRead::Miss => "miss",
        }
    }
}

/// What `cargo check` said about the executor's commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// It compiled.
    Passes,
    /// It did not.
    Fails {
        /// The compiler's first error line, e.g. ``src/billing.rs:5:22: error[E0425]: cannot
        /// find function `validate_user` in module `crate::auth` ``.
        first_error: String,
    },
}

/// What one variant of the story ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The variant run.
    pub variant: Variant,
    /// The executor's read of the spec just before committing.
    pub commit_read: CommitRead,
    /// The version of the spec the executor committed from.
    pub spec_version: u64,
    /// How many of the fixture's callers that spec listed (and so were renamed).
    pub callers_renamed: usize,
    /// How many callers the fixture has.
    pub callers_total: usize,
    /// The build of the committed work.
    pub build: Build,
    /// How long `cargo check` took.
    pub check_time: Duration,
    /// How long the whole variant took (segment, processes, check, clean-up).
    pub elapsed: Duration,
}

impl Verdict {
    /// Whether the build passed.
    pub fn passed(&self) -> bool {
        self.build == Build::Passes
    }

    /// Whether the outcome is the one the story expects: `with` passes, the others fail.
    pub fn as_expected(&self) -> bool {
        self.passed() == self.variant.expects_pass()
    }

    /// The commit-time read, for the summary: `MISS → v2`, `HIT on v1`, `none (v1 in context)`.
    pub fn commit_read_text(&self) -> String {
        match self.commit_read {
            CommitRead::Skipped => format!("none (v{} in context)", self.spec_version),
            CommitRead::Hit => format!("HIT on v{}", self.spec_version),
            CommitRead::Miss => format!("MISS → v{}", self.spec_version),
        }
    }
}

impl fmt::Display for Verdict {
    /// `with: build PASSES (4/4 callers renamed)` or
    /// `context-cache: build FAILS — src/billing.rs:5:22: error[E0425]: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.build {
            Build::Passes => write!(
                f,
                "{}: build PASSES ({}/{} callers renamed)",
                self.variant, self.callers_renamed, self.callers_total
            ),
            Build::Fails { first_error } => {
                write!(f, "{}: build FAILS — {first_error}", self.variant)
            }
        }
    }
}

/// The executor's commit, as stored in `task/result`: a few `field: value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    pub commit_read: CommitRead,
    pub spec_version: u64,
    pub callers_renamed: usize,
    pub first_error: Option<String>,
    pub check_ms: u64,
}

impl Commit {
    pub(crate) fn render(&self) -> String {
        let mut text = format!(
            "spec-version: {}\ncommit-read: {}\ncallers: {}/{}\ncheck-ms: {}\nbuild: {}\n",
            self.spec_version,
            self.commit_read.word(),
            self.callers_renamed,
            fixture::CALLERS.len(),
            self.check_ms,
            if self.first_error.is_some() {
                "fails"
            } else {
                "passes"
            },
        );
        if let Some(error) = &self.first_error {
            text.push_str("error: ");
            text.push_str(&error.replace('\n', " "));
            text.push('\n');
        }
        text
    }

    pub(crate) fn parse(text: &str) -> Result<Commit, DemoError> {
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
                .ok_or_else(|| DemoError::BadResult(format!("no `{name}:` line in {text:?}")))
        };
        let number = |name: &str, value: &str| {
            value
                .parse::<u64>()
                .map_err(|_| DemoError::BadResult(format!("`{name}: {value}` is not a number")))
        };
        let commit_read = match field("commit-read")? {
            "none" => CommitRead::Skipped,
            "hit" => CommitRead::Hit,
            "miss" => CommitRead::Miss,
            other => return Err(DemoError::BadResult(format!("commit-read `{other}`"))),
        };
        let callers = field("callers")?;
        let renamed = callers
            .split_once('/')
            .map_or(callers, |(renamed, _)| renamed);
        let first_error = match field("build")? {
            "passes" => None,
            "fails" => Some(field("error")?.to_owned()),
            other => return Err(DemoError::BadResult(format!("build `{other}`"))),
        };
        Ok(Commit {
            commit_read,
            spec_version: number("spec-version", field("spec-version")?)?,
            callers_renamed: usize::try_from(number("callers", renamed)?)
                .map_err(|_| DemoError::BadResult(format!("callers `{callers}`")))?,
            first_error,
            check_ms: number("check-ms", field("check-ms")?)?,
        })
    }

    /// The one-line summary for narration: `build PASSES` / `build FAILS — error...`.
    pub(crate) fn build_text(&self) -> String {
        match &self.first_error {
            None => "build PASSES".to_owned(),
            Some(error) => format!("build FAILS — {error}"),
        }
    }

    pub(crate) fn into_verdict(self, variant: Variant, elapsed: Duration) -> Verdict {
        Verdict {
            variant,
            commit_read: self.commit_read,
            spec_version: self.spec_version,
            callers_renamed: self.callers_renamed,
            callers_total: fixture::CALLERS.len(),
            build: match self.first_error {
                None => Build::Passes,
                Some(first_error) => Build::Fails { first_error },
            },
            check_time: Duration::from_millis(self.check_ms),
            elapsed,
        }
    }
}

/// The summary table of several verdicts: variant, commit-time read, spec used, build.
pub fn summary_table(verdicts: &[Verdict]) -> String {
    let mut table = format!(
        "{:<16} {:<22} {:<14} {}\n",
        "variant", "commit-time read", "spec used", "build"
    );
    for verdict in verdicts {
        let spec = format!(
            "v{} ({}/{})",
            verdict.spec_version, verdict.callers_renamed, verdict.callers_total
        );
        let build = match &verdict.build {
            Build::Passes => "PASSES".to_owned(),
            // The error's location and code: `src/billing.rs:5:22: error[E0425]`.
            Build::Fails { first_error } => match first_error.find(']') {
                Some(end) => format!("FAILS — {}", &first_error[..=end]),
                None => format!("FAILS — {first_error}"),
            },
        };
        table.push_str(&format!(
            "{:<16} {:<22} {:<14} {build}\n",
            verdict.variant.name(),
            verdict.commit_read_text(),
            spec
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse() {
        assert_eq!(Variant::parse_list("all").ok(), Some(Variant::ALL.to_vec()));
        for variant in Variant::ALL {
            assert_eq!(variant.name().parse::<Variant>().ok(), Some(variant));
        }
        assert!(Variant::parse_list("both").is_err());
    }

    #[test]
    fn commits_round_trip() {
        for first_error in [
            None,
            Some("src/billing.rs:5:22: error[E0425]: x: y".to_owned()),
        ] {
            let commit = Commit {
                commit_read: CommitRead::Hit,
                spec_version: 1,
                callers_renamed: 3,
                first_error,
                check_ms: 412,
            };
            assert_eq!(Commit::parse(&commit.render()).ok(), Some(commit));
        }
    }
}
