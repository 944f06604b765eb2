//! How a command ends when it does not succeed. Most failures are plain `anyhow` errors, exit
//! code 1, whose text is a chain of verb phrases, outermost first: "clone failed: copy table
//! app.orders: write rows to the target: connection reset". The failures that end with another
//! exit code, or that were already printed, carry a `Class`, and `exit_of` is the one place
//! that turns an error into an exit code and the line printed for it.

use std::fmt;

/// What kind of failure ended a command; each has its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A mistake in how neoncopy was called (a flag, a file, a resume that cannot be): exit 2.
    Usage,
    /// `check` found a failing check; the table that says which was printed: exit 1.
    ChecksFailed,
    /// `compare` found differences; they were printed: exit 1.
    Differences,
    /// `compare` could not compare, or `cutover` could not cut over (a connection, a query):
    /// exit 2.
    CouldNotCompare,
    /// The target refused the schema before anything was written: exit 1, nothing to resume.
    Refused,
    /// Stopped by SIGINT or SIGTERM: exit 130.
    Interrupted,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Usage | Class::CouldNotCompare => 2,
            Class::ChecksFailed | Class::Differences | Class::Refused => 1,
            Class::Interrupted => 130,
        }
    }

    /// Whether the command has already printed what went wrong (the checks, the differences).
    fn already_printed(self) -> bool {
        matches!(self, Class::ChecksFailed | Class::Differences)
    }
}

/// A failure of a given class. As the outermost error its text is the whole message; as a
/// context (`err.context(Classified::new(..))`) it is the first phrase of the chain.
#[derive(Debug)]
pub struct Classified {
    pub class: Class,
    /// What went wrong.
    pub message: String,
    /// What to do about it, when that is known apart from the message.
    pub fix: Option<String>,
}

impl Classified {
    pub fn new(class: Class, message: impl Into<String>) -> Classified {
        Classified {
            class,
            message: message.into(),
            fix: None,
        }
    }

    /// The target refused part of the schema before anything was written: what it refused and
    /// what it said, and the way out.
    pub fn refused(what: impl Into<String>, fix: impl Into<String>) -> Classified {
        Classified {
            class: Class::Refused,
            message: what.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (&self.fix, self.class) {
            (Some(fix), Class::Refused) => write!(f, "; nothing was written to the target: {fix}"),
            (Some(fix), _) => write!(f, "; {fix}"),
            (None, _) => Ok(()),
        }
    }
}

impl std::error::Error for Classified {}

/// A usage error: one line saying what is wrong and what to do, exit 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Classified::new(Class::Usage, message).into()
}

/// A failure with advice that belongs at the end of its line, after the causes: how to
/// continue an interrupted or failed clone.
#[derive(Debug)]
pub struct WithHint {
    pub error: anyhow::Error,
    pub hint: String,
}

impl fmt::Display for WithHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}; {}", self.error, self.hint)
    }
}

impl std::error::Error for WithHint {}

/// Adds advice at the end of an error's line (see `WithHint`).
pub fn with_hint(error: anyhow::Error, hint: impl Into<String>) -> anyhow::Error {
    WithHint {
        error,
        hint: hint.into(),
    }
    .into()
}

/// The class of a failure: the outermost `Classified` in its chain, looking through a hint.
pub fn class_of(e: &anyhow::Error) -> Option<Class> {
    if let Some(h) = e.downcast_ref::<WithHint>() {
        return class_of(&h.error);
    }
    e.downcast_ref::<Classified>().map(|c| c.class)
}

/// Whether a failure is of this class.
pub fn is(e: &anyhow::Error, class: Class) -> bool {
    class_of(e) == Some(class)
}

/// The exit code of a failed command, and the line to print for it (none when the command
/// printed its own account).
pub fn exit_of(e: &anyhow::Error) -> (u8, Option<String>) {
    match class_of(e) {
        Some(c) if c.already_printed() => (c.exit_code(), None),
        Some(c) => (c.exit_code(), Some(format!("{e:#}"))),
        None => (1, Some(format!("{e:#}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn each_class_has_its_exit_code_and_plain_errors_exit_1() {
        let plain = anyhow::anyhow!("connection reset").context("copy table app.orders");
        assert_eq!(
            exit_of(&plain),
            (1, Some("copy table app.orders: connection reset".into()))
        );
        assert_eq!(exit_of(&usage("bad flag")), (2, Some("bad flag".into())));
        let checks: anyhow::Error = Classified::new(Class::ChecksFailed, "checks failed").into();
        assert_eq!(exit_of(&checks), (1, None));
        let diff: anyhow::Error = Classified::new(Class::Differences, "differences").into();
        assert_eq!(exit_of(&diff), (1, None));
        let cannot = anyhow::anyhow!("timeout")
            .context(Classified::new(Class::CouldNotCompare, "could not compare"));
        assert_eq!(
            exit_of(&cannot),
            (2, Some("could not compare: timeout".into()))
        );
    }

    #[test]
    fn a_class_is_found_under_contexts_and_the_hint_comes_last() {
        let inner = Classified::new(Class::Interrupted, "interrupted by SIGINT");
        let e = with_hint(
            anyhow::Error::new(inner).context("clone"),
            "continue with: neoncopy clone --resume",
        );
        assert_eq!(class_of(&e), Some(Class::Interrupted));
        assert_eq!(
            exit_of(&e),
            (
                130,
                Some("clone: interrupted by SIGINT; continue with: neoncopy clone --resume".into())
            )
        );
        let r: anyhow::Result<()> = Err(usage("no source")).context("clone");
        assert!(is(&r.unwrap_err(), Class::Usage));
    }
}
