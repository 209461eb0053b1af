//! API keys for programs, CI and workers: `pfc_<id>_<secret>`, shown once at creation and
//! stored only as a salted SHA-256 of the secret ([`KeyRecord`]).
//!
//! The id is public (listing and revoking name it); the secret is 32 random bytes. Checking
//! a key reads its record by id, hashes the presented secret with the record's salt and
//! compares in constant time. Failures are counted per key id, in this process: past
//! [`MAX_FAILURES`] in [`FAILURE_WINDOW`] that id is refused without checking until the
//! window ends, which bounds guessing one key's secret (2^256 possibilities to begin with).
//! Ids are 16 random characters (36^16), so probing for ids costs one lookup each and finds
//! nothing; the limit is per id rather than per client address because behind the gateway
//! every call comes from the gateway's address.

mod memory;
mod redis;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pfc_auth::{Scope, Scopes};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use self::memory::MemoryKeyStore;
pub use self::redis::RedisKeyStore;
use crate::{AccessError, Caller, Credential};

/// Every API key starts with this (and no JWT does: theirs start with `ey`).
pub const PREFIX: &str = "pfc_";
/// Failed checks allowed per key id within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Key ids remembered with failures, at most (older windows are dropped past this).
const MAX_TRACKED: usize = 10_000;
/// Length of a key id (lowercase letters and digits).
const ID_LEN: usize = 16;
/// Longest key name.
pub const MAX_NAME_LEN: usize = 64;

/// A stored key: never the secret, only its salted hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id (`pfc_<id>_…`).
    pub id: String,
    /// What the key is for (`ci`, `worker-gpu`).
    pub name: String,
    /// Granted scopes, space-separated.
    pub scopes: String,
    /// Kinds a worker key may run (empty: any).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Salt, hex.
    pub salt: String,
    /// SHA-256(salt ‖ secret), hex.
    pub hash: String,
    /// Created at (ms since the epoch).
    pub created_ms: i64,
    /// Revoked at (ms since the epoch), if revoked.
    #[serde(default)]
    pub revoked_ms: Option<i64>,
}

impl KeyRecord {
    /// The scopes this key grants.
    pub fn scopes(&self) -> Scopes {
        Scopes::from_claim(&self.scopes)
    }
}

/// Where key records live: memory (`pfc dev`, tests) or Redis (shared by every jobs replica).
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Stores a new record.
    async fn put(&self, record: &KeyRecord) -> Result<(), AccessError>;
    /// The record with `id`.
    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, AccessError>;
    /// Every record, revoked ones included.
    async fn list(&self) -> Result<Vec<KeyRecord>, AccessError>;
    /// Marks `id` revoked at `at_ms`; false when there is no such key.
    async fn revoke(&self, id: &str, at_ms: i64) -> Result<bool, AccessError>;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn hash(salt: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Splits `pfc_<id>_<secret>`; `None` when the shape is wrong.
fn split(key: &str) -> Option<(&str, &str)> {
    let (id, secret) = key.strip_prefix(PREFIX)?.split_once('_')?;
    let ok = id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !secret.is_empty();
    ok.then_some((id, secret))
}

#[derive(Debug)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Validates a key name: 1–64 characters, letters, digits, `_`, `-`, `.`.
pub fn validate_name(name: &str) -> Result<(), AccessError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AccessError::InvalidArgument(format!(
            "name: 1-{MAX_NAME_LEN} characters, letters, digits, `_`, `-`, `.` (got {:?})",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// Creates, checks, lists and revokes API keys over a [`KeyStore`].
#[derive(Debug)]
pub struct ApiKeys {
    store: Arc<dyn KeyStore>,
    failures: Mutex<HashMap<String, Window>>,
}

impl ApiKeys {
    /// Keys kept in `store`.
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Creates a key; returns the key (shown once, never stored) and its record.
    pub async fn create(
        &self,
        name: &str,
        scopes: Scopes,
        kinds: Vec<String>,
    ) -> Result<(String, KeyRecord), AccessError> {
        validate_name(name)?;
        if scopes.is_empty() {
            return Err(AccessError::InvalidArgument(format!(
                "scopes: at least one of {}",
                Scope::ALL.map(Scope::as_str).join(", ")
            )));
        }
        if !kinds.is_empty() && !scopes.contains(Scope::Worker) {
            return Err(AccessError::InvalidArgument(
                "kinds: only a key with the worker scope can be limited to kinds".into(),
            ));
        }
        // The thread-local generator is not Send: draw everything before the first await.
        let (id, secret, salt) = {
            let mut rng = rand::rng();
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            let id: String = (0..ID_LEN)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            let secret: [u8; 32] = rng.random();
            let salt: [u8; 16] = rng.random();
            (id, secret, salt)
        };
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let record = KeyRecord {
            id: id.clone(),
            name: name.to_string(),
            scopes: scopes.to_string(),
            kinds,
            salt: hex(&salt),
            hash: hex(&hash(&salt, secret.as_bytes())),
            created_ms: now_ms(),
            revoked_ms: None,
        };
        self.store.put(&record).await?;
        tracing::info!(key_id = %id, name, scopes = %scopes, "API key created");
        Ok((format!("{PREFIX}{id}_{secret}"), record))
    }

    /// Every key (revoked ones included), oldest first.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, AccessError> {
        let mut all = self.store.list().await?;
        all.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(all)
    }

    /// Revokes `id`: later checks of that key fail. False when no such key.
    pub async fn revoke(&self, id: &str) -> Result<bool, AccessError> {
        let found = self.store.revoke(id, now_ms()).await?;
        if found {
            tracing::info!(key_id = %id, "API key revoked");
        }
        Ok(found)
    }

    /// The caller a key proves, or why not.
    pub async fn verify(&self, key: &str) -> Result<Caller, AccessError> {
        let bad = || AccessError::Invalid("invalid API key".into());
        let Some((id, secret)) = split(key) else {
            return Err(bad());
        };
        self.check_budget(id)?;
        let Some(record) = self.store.get(id).await? else {
            self.fail(id);
            return Err(bad());
        };
        let (Some(salt), Some(want)) = (unhex(&record.salt), unhex(&record.hash)) else {
            return Err(AccessError::Unavailable("corrupt API key record".into()));
        };
        let got = hash(&salt, secret.as_bytes());
        if !bool::from(got.as_slice().ct_eq(want.as_slice())) {
            self.fail(id);
            return Err(bad());
        }
        if record.revoked_ms.is_some() {
            return Err(AccessError::Invalid("API key revoked".into()));
        }
        Ok(Caller {
            subject: record.name.clone(),
            scopes: record.scopes(),
            kinds: (!record.kinds.is_empty()).then(|| record.kinds.clone()),
            credential: Credential::ApiKey { id: record.id },
        })
    }

    fn check_budget(&self, id: &str) -> Result<(), AccessError> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(id) {
            Some(w) if w.failures >= MAX_FAILURES && w.start.elapsed() < FAILURE_WINDOW => {
                let wait = (FAILURE_WINDOW - w.start.elapsed()).as_secs().max(1);
                Err(AccessError::TooManyFailures(wait))
            }
            _ => Ok(()),
        }
    }

    fn fail(&self, id: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, w| w.start.elapsed() < FAILURE_WINDOW);
        }
        let w = failures.entry(id.to_string()).or_insert(Window {
            start: Instant::now(),
            failures: 0,
        });
        if w.start.elapsed() >= FAILURE_WINDOW {
            *w = Window {
                start: Instant::now(),
                failures: 0,
            };
        }
        w.failures += 1;
        tracing::warn!(key_id = %id, failures = w.failures, "API key check failed");
    }
}
