//! What a handler gets ([`Job`]) and gives back ([`Output`], [`HandlerError`]).

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

/// Content type of JSON payloads and results.
pub const JSON: &str = "application/json";
/// Content type of text payloads and results (pfc's built-in text kinds).
pub const TEXT: &str = "text/plain; charset=utf-8";

/// One job handed to a handler: its input and how to report progress.
///
/// Delivery is at-least-once: the same job can reach a handler again (after a worker crash,
/// or a lost lease), so handlers should be idempotent. [`Job::attempt`] says which try this
/// is.
pub struct Job {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) content_type: String,
    pub(crate) delivery: u64,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) traceparent: String,
    pub(crate) created_at: SystemTime,
    pub(crate) progress: mpsc::UnboundedSender<(String, u64, u32)>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("content_type", &self.content_type)
            .field("payload_bytes", &self.payload.len())
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl Job {
    /// The job id (a ULID).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its kind (one this worker registered a handler for).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The input as sent: JSON bytes, text, or other bytes (see [`Job::content_type`]).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Content type of the input: [`JSON`], [`TEXT`] (jobs submitted with `text`), or
    /// whatever the submitter declared.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The input decoded from JSON into `T`. Input that does not decode is a permanent
    /// failure (retrying will not fix it): `let input: Resize = job.json()?;`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| HandlerError::permanent(format!("payload is not the expected JSON: {e}")))
    }

    /// The input as text (jobs submitted with `text`, or any UTF-8 payload); not UTF-8 is a
    /// permanent failure.
    pub fn text(&self) -> Result<&str, HandlerError> {
        std::str::from_utf8(&self.payload)
            .map_err(|_| HandlerError::permanent("payload is not UTF-8 text"))
    }

    /// Which delivery this is that counts as an attempt, 1-based.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts allowed; when `attempt() == max_attempts()` a retryable failure fails the job.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delivery number (the fence the SDK echoes in every report).
    pub fn delivery(&self) -> u64 {
        self.delivery
    }

    /// W3C traceparent of the submit, to continue the submitter's trace.
    pub fn traceparent(&self) -> Option<&str> {
        (!self.traceparent.is_empty()).then_some(self.traceparent.as_str())
    }

    /// When the job was accepted.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// How long ago the job was accepted (queue wait plus running time so far).
    pub fn age(&self) -> Duration {
        self.created_at.elapsed().unwrap_or_default()
    }

    /// Reports how far the job is (0–100, larger values count as 100): watchers of the job
    /// (`WatchJob`, the UI) see it. Best effort: never blocks, never fails.
    pub fn progress(&self, percent: u32) {
        let _ = self
            .progress
            .send((self.id.clone(), self.delivery, percent.min(100)));
    }
}

/// What a handler returns on success: a JSON value, text, or bytes with a content type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// JSON (UTF-8 bytes of one JSON value).
    Json(Vec<u8>),
    /// Text (stored as the job's text `result`, like the built-in kinds').
    Text(String),
    /// Other bytes, with their content type.
    Bytes {
        /// The bytes.
        bytes: Vec<u8>,
        /// Their MIME type.
        content_type: String,
    },
}

impl Output {
    /// `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, HandlerError> {
        serde_json::to_vec(value)
            .map(Output::Json)
            .map_err(|e| HandlerError::permanent(format!("result is not serializable: {e}")))
    }

    /// A text result.
    pub fn text(text: impl Into<String>) -> Self {
        Output::Text(text.into())
    }

    /// Bytes of another content type.
    pub fn bytes(bytes: impl Into<Vec<u8>>, content_type: impl Into<String>) -> Self {
        Output::Bytes {
            bytes: bytes.into(),
            content_type: content_type.into(),
        }
    }

    /// The wire form: bytes and content type.
    pub(crate) fn into_wire(self) -> (Vec<u8>, String) {
        match self {
            Output::Json(b) => (b, JSON.to_owned()),
            Output::Text(t) => (t.into_bytes(), TEXT.to_owned()),
            Output::Bytes {
                bytes,
                content_type,
            } => (bytes, content_type),
        }
    }
}

impl From<serde_json::Value> for Output {
    fn from(v: serde_json::Value) -> Self {
        // a Value always serializes
        Output::Json(serde_json::to_vec(&v).unwrap_or_else(|_| b"null".to_vec()))
    }
}

impl From<String> for Output {
    fn from(t: String) -> Self {
        Output::Text(t)
    }
}

impl From<&str> for Output {
    fn from(t: &str) -> Self {
        Output::Text(t.to_owned())
    }
}

impl From<()> for Output {
    /// No result: JSON `null`.
    fn from(_: ()) -> Self {
        Output::Json(b"null".to_vec())
    }
}

/// Why a handler failed: **retryable** (the default — the job is tried again with backoff
/// while attempts remain) or **permanent** (the job fails at once; bad input).
///
/// Any `std::error::Error` converts into a retryable one, so `?` works on I/O and client
/// errors; mark the ones retrying cannot fix with [`HandlerError::permanent`] or
/// [`ResultExt::permanent`]. (Like `anyhow::Error`, this type does not implement
/// `std::error::Error` itself, which is what makes that conversion possible.)
pub struct HandlerError {
    message: String,
    permanent: bool,
}

impl HandlerError {
    /// A failure worth retrying (a timeout, an unavailable dependency).
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure that will happen again on every try: the job fails now, without retries.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: true,
        }
    }

    /// True for [`HandlerError::permanent`].
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The message stored as the job's error.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.permanent {
            "permanent"
        } else {
            "retryable"
        };
        write!(f, "HandlerError({kind}: {:?})", self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    /// Retryable, with the error and its sources as the message.
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::retryable(message)
    }
}

/// `.permanent()` / `.retryable()` on any `Result` whose error displays.
pub trait ResultExt<T> {
    /// The error as a [`HandlerError::permanent`].
    fn permanent(self) -> Result<T, HandlerError>;
    /// The error as a [`HandlerError::retryable`].
    fn retryable(self) -> Result<T, HandlerError>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn permanent(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::permanent)
    }

    fn retryable(self) -> Result<T, HandlerError> {
        self.map_err(HandlerError::retryable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(payload: &[u8]) -> Job {
        Job {
            id: "01J".into(),
            kind: "k".into(),
            payload: payload.to_vec(),
            content_type: JSON.into(),
            delivery: 1,
            attempt: 1,
            max_attempts: 3,
            traceparent: String::new(),
            created_at: SystemTime::now(),
            progress: mpsc::unbounded_channel().0,
        }
    }

    /// Bad JSON input is a permanent failure; other errors convert to retryable ones with
    /// their sources; the extension trait picks either.
    #[test]
    fn errors() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct In {
            w: u32,
        }
        let e = job(b"{\"w\":\"x\"}").json::<In>().unwrap_err();
        assert!(e.is_permanent());
        assert!(e.message().contains("payload is not the expected JSON"));
        assert_eq!(job(b"{\"w\":3}").json::<In>().unwrap().w, 3);
        let io = std::io::Error::other("disk on fire");
        let e: HandlerError = io.into();
        assert!(!e.is_permanent());
        assert_eq!(e.message(), "disk on fire");
        let r: Result<(), &str> = Err("nope");
        assert!(r.permanent().unwrap_err().is_permanent());
        assert_eq!(
            job(&[0xff]).text().unwrap_err().message(),
            "payload is not UTF-8 text"
        );
    }

    /// Outputs carry their content type on the wire.
    #[test]
    fn outputs() {
        assert_eq!(
            Output::from(serde_json::json!({"a": 1})).into_wire(),
            (b"{\"a\":1}".to_vec(), JSON.to_owned())
        );
        assert_eq!(
            Output::from("HI").into_wire(),
            (b"HI".to_vec(), TEXT.to_owned())
        );
        assert_eq!(Output::from(()).into_wire().0, b"null");
        assert_eq!(
            Output::bytes(vec![1], "image/png").into_wire(),
            (vec![1], "image/png".to_owned())
        );
    }
}
