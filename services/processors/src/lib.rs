//! The processors a job can name in its `kind`, and the registry that finds them.
//!
//! The jobs server uses the registry to reject unknown kinds at submit time; workers use it
//! to run jobs. Both come from this one crate, so they always agree.
//!
//! # Layout
//! - [`Processor`]: one kind of work.
//! - [`Registry`]: processors by name; [`Registry::builtin`] has the ones pfc ships.
//! - [`ProcessError`]: retryable or permanent failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha2::Digest;

/// Why a processor failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// Worth trying again (a transient fault); retried with backoff up to max attempts.
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time (bad input): the job fails at once.
    #[error("{0}")]
    Permanent(String),
}

/// One kind of work.
#[async_trait]
pub trait Processor: Send + Sync + 'static {
    /// Name used in `SubmitJobRequest.kind`.
    fn name(&self) -> &'static str;
    /// One line for `ListKinds` and the UI.
    fn description(&self) -> &'static str;
    /// Runs the job on `text`.
    async fn run(&self, text: &str) -> Result<String, ProcessError>;
}

/// Processors by name.
#[derive(Clone, Default)]
pub struct Registry {
    by_name: BTreeMap<&'static str, Arc<dyn Processor>>,
}

impl Registry {
    /// The processors pfc ships: `uppercase` (the origin's), `lowercase`, `reverse`,
    /// `wordcount`, `sha256`, and two for trying the queue's guarantees: `sleep` and `fail`.
    pub fn builtin() -> Self {
        let mut r = Self::default();
        r.register(Fn(
            "uppercase",
            "UPPERCASE the text (the origin's job)",
            |t| Ok(t.to_uppercase()),
        ));
        r.register(Fn("lowercase", "lowercase the text", |t| {
            Ok(t.to_lowercase())
        }));
        r.register(Fn(
            "reverse",
            "reverse the text, character by character",
            |t| Ok(t.chars().rev().collect()),
        ));
        r.register(Fn(
            "wordcount",
            "count the words (whitespace-separated)",
            |t| Ok(t.split_whitespace().count().to_string()),
        ));
        r.register(Fn("sha256", "SHA-256 of the UTF-8 text, hex", |t| {
            Ok(hex::encode(sha2::Sha256::digest(t.as_bytes())))
        }));
        r.register(Sleep);
        r.register(Fn(
            "fail",
            "always fails (retryable): shows retries and dead letters",
            |_| {
                Err(ProcessError::Retryable(
                    "the fail processor always fails".into(),
                ))
            },
        ));
        r
    }

    /// Adds (or replaces) a processor.
    pub fn register(&mut self, p: impl Processor) {
        self.by_name.insert(p.name(), Arc::new(p));
    }

    /// The processor called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Processor>> {
        self.by_name.get(name).cloned()
    }

    /// All processors, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Processor>> {
        self.by_name.values()
    }

    /// The names, comma-separated (for error messages).
    pub fn names(&self) -> String {
        self.by_name.keys().copied().collect::<Vec<_>>().join(", ")
    }
}

/// A processor made of a plain function.
struct Fn(
    &'static str,
    &'static str,
    fn(&str) -> Result<String, ProcessError>,
);

#[async_trait]
impl Processor for Fn {
    fn name(&self) -> &'static str {
        self.0
    }
    fn description(&self) -> &'static str {
        self.1
    }
    async fn run(&self, text: &str) -> Result<String, ProcessError> {
        (self.2)(text)
    }
}

/// Sleeps for the number of milliseconds in the text (at most 60 000): a job that takes time,
/// for watching progress and for crash tests.
struct Sleep;

#[async_trait]
impl Processor for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }
    fn description(&self) -> &'static str {
        "sleep for the number of milliseconds in the text (max 60000)"
    }
    async fn run(&self, text: &str) -> Result<String, ProcessError> {
        let ms: u64 = text.trim().parse().map_err(|_| {
            ProcessError::Permanent(format!(
                "sleep needs a number of milliseconds, got {text:?}"
            ))
        })?;
        if ms > 60_000 {
            return Err(ProcessError::Permanent(format!(
                "sleep is limited to 60000 ms, got {ms}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(format!("slept {ms} ms"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(kind: &str, text: &str) -> Result<String, ProcessError> {
        Registry::builtin().get(kind).expect(kind).run(text).await
    }

    /// The origin's example and each builtin produce the documented output.
    #[tokio::test]
    async fn builtins() {
        assert_eq!(
            run("uppercase", "bonjour le monde").await.unwrap(),
            "BONJOUR LE MONDE"
        );
        assert_eq!(run("uppercase", "straße").await.unwrap(), "STRASSE");
        assert_eq!(run("lowercase", "ABC").await.unwrap(), "abc");
        assert_eq!(run("reverse", "héllo").await.unwrap(), "olléh");
        assert_eq!(run("wordcount", " a  b\tc\n").await.unwrap(), "3");
        assert_eq!(
            run("sha256", "abc").await.unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            run("fail", "x").await,
            Err(ProcessError::Retryable(_))
        ));
        assert!(matches!(
            run("sleep", "abc").await,
            Err(ProcessError::Permanent(_))
        ));
        assert_eq!(run("sleep", "1").await.unwrap(), "slept 1 ms");
    }

    /// Unknown names are absent and the name list is sorted.
    #[test]
    fn registry_lookup() {
        let r = Registry::builtin();
        assert!(r.get("nope").is_none());
        assert!(r.names().starts_with("fail, lowercase"));
    }
}
