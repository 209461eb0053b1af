//! Key rotation: a [`Ring`] of signing keys, each active from a point in time.
//!
//! - The newest key whose activation time has come signs; older keys stay **published**
//!   (JWKS, verification) until the token lifetime has passed since they were superseded, so
//!   no token signed before a rotation stops verifying early: rotation logs nobody out.
//! - A key whose activation time is still ahead is published but does not sign yet: verifiers
//!   learn it before the first token signed with it exists.
//! - Keys come from a [`KeySource`]: a key file (`PFC_AUTH_SIGNING_KEY_FILE`) and/or a key
//!   directory (`PFC_AUTH_KEY_DIR`) of `*.pem` files. A file named `<anything>-<unix
//!   seconds>.pem` (e.g. `key-1767225600.pem`) becomes active at that time; any other name is
//!   active from the start. An empty key directory gets a fresh key written into it, so a
//!   mounted volume keeps the key across restarts by default.

use std::path::{Path, PathBuf};

use crate::{AuthError, SigningKey};

/// One key of a ring and when it starts signing (seconds since the epoch).
#[derive(Debug, Clone)]
pub struct TimedKey {
    /// The key.
    pub key: SigningKey,
    /// When it becomes the signing key (0: from the start).
    pub active_from: u64,
}

/// Keys ordered by activation time (then kid), never empty.
#[derive(Debug, Clone)]
pub struct Ring {
    keys: Vec<TimedKey>,
}

impl Ring {
    /// A ring of one key, active from the start.
    pub fn single(key: SigningKey) -> Self {
        Self {
            keys: vec![TimedKey {
                key,
                active_from: 0,
            }],
        }
    }

    /// A ring of `keys` (one entry per kid: the earliest activation wins); `None` when empty.
    pub fn new(mut keys: Vec<TimedKey>) -> Option<Self> {
        keys.sort_by(|a, b| (a.active_from, a.key.kid()).cmp(&(b.active_from, b.key.kid())));
        let mut seen = std::collections::HashSet::new();
        keys.retain(|k| seen.insert(k.key.kid().to_string()));
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// The keys, oldest activation first.
    pub fn keys(&self) -> &[TimedKey] {
        &self.keys
    }

    /// The key that signs at `now`: the newest one already active (the oldest if none is).
    pub fn signing(&self, now: u64) -> &TimedKey {
        self.keys
            .iter()
            .rev()
            .find(|k| k.active_from <= now)
            .unwrap_or(&self.keys[0])
    }

    /// The keys to publish at `now`: upcoming ones, the signing one, and each older one until
    /// `lifetime_secs` (token lifetime plus clock leeway) after the key that superseded it
    /// became active.
    pub fn published(&self, now: u64, lifetime_secs: u64) -> impl Iterator<Item = &TimedKey> {
        let signing = self.signing(now).key.kid().to_string();
        self.keys
            .iter()
            .enumerate()
            .filter(move |(i, k)| {
                if k.active_from > now || k.key.kid() == signing {
                    return true;
                }
                match self.keys.get(i + 1) {
                    Some(next) if next.active_from <= now => {
                        next.active_from.saturating_add(lifetime_secs) > now
                    }
                    _ => true,
                }
            })
            .map(|(_, k)| k)
    }
}

/// Where an issuer's keys live.
#[derive(Debug, Clone, Default)]
pub struct KeySource {
    /// One key file.
    pub file: Option<PathBuf>,
    /// A directory of `*.pem` key files; written to when it holds none.
    pub dir: Option<PathBuf>,
}

/// The activation time a key file's name carries (`key-1767225600.pem` → 1767225600), or 0.
pub fn active_from_name(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit_once('-'))
        .filter(|(_, digits)| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(_, digits)| digits.parse().ok())
        .unwrap_or(0)
}

/// The file name for a key active from `active_from`: `key-<unix seconds>.pem`.
pub fn key_file_name(active_from: u64) -> String {
    format!("key-{active_from}.pem")
}

/// Writes a fresh key into `dir` as `key-<active_from>.pem` (mode 0600) and returns its path.
/// The key is written to a temporary name, then linked in place, so a reader never sees half
/// a key and an existing key file is never replaced: if the name is taken (two keys in the
/// same second) the next second is used.
pub fn write_new_key(dir: &Path, active_from: u64) -> Result<PathBuf, AuthError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |what: &str, p: &Path, e: std::io::Error| {
        AuthError::Key(format!("cannot {what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| err("create", dir, e))?;
    let tmp = dir.join(format!(".new-key-{}.tmp", ulid::Ulid::new()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err("write", &tmp, e))?;
    f.write_all(SigningKey::generate_pem().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| err("write", &tmp, e))?;
    let mut at = active_from;
    let result = loop {
        let path = dir.join(key_file_name(at));
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => break Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => at += 1,
            Err(e) => break Err(err("link", &path, e)),
        }
    };
    let _ = std::fs::remove_file(&tmp);
    result
}

impl KeySource {
    /// True when nothing is configured (the issuer then uses an ephemeral key).
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.dir.is_none()
    }

    /// Reads every key. An empty (or missing) key directory first gets a new key, active from
    /// `now`. Fails when a key file is unreadable or no key is found.
    pub fn load(&self, now: u64) -> Result<Ring, AuthError> {
        let mut keys = Vec::new();
        if let Some(path) = &self.file {
            keys.push(TimedKey {
                key: SigningKey::load(path)?,
                active_from: active_from_name(path),
            });
        }
        if let Some(dir) = &self.dir {
            let mut found = self.read_dir(dir)?;
            if found.is_empty() && keys.is_empty() {
                let path = write_new_key(dir, now).map_err(|e| match e {
                    AuthError::Key(why) => AuthError::KeyDirNotWritable(why),
                    e => e,
                })?;
                tracing::info!(path = %path.display(), "key directory was empty: wrote a new signing key");
                found = self.read_dir(dir)?;
            }
            keys.extend(found);
        }
        Ring::new(keys).ok_or_else(|| AuthError::Key("no signing key configured".into()))
    }

    fn read_dir(&self, dir: &Path) -> Result<Vec<TimedKey>, AuthError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(AuthError::Key(format!(
                    "cannot read {}: {e}",
                    dir.display()
                )))
            }
        };
        let mut keys = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Kubernetes Secret volumes hold `..data` and `..<timestamp>` entries: skip dot-names.
            if name.starts_with('.') || !name.ends_with(".pem") {
                continue;
            }
            // `metadata` follows symlinks (Secret volume files are symlinks into `..data`).
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            keys.push(TimedKey {
                key: SigningKey::load(&path)?,
                active_from: active_from_name(&path),
            });
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(active_from: u64) -> TimedKey {
        TimedKey {
            key: SigningKey::generate(),
            active_from,
        }
    }

    fn kids<'a>(it: impl Iterator<Item = &'a TimedKey>) -> Vec<String> {
        it.map(|k| k.key.kid().to_string()).collect()
    }

    /// The newest active key signs; a key scheduled for later is published but does not sign;
    /// a superseded key stays published for the lifetime, then is dropped.
    #[test]
    fn rotation_timeline() {
        let (a, b) = (key(0), key(1000));
        let (ka, kb) = (a.key.kid().to_string(), b.key.kid().to_string());
        let ring = Ring::new(vec![b, a]).unwrap();
        // Before b's activation: a signs, b is already published (verifiers learn it early).
        assert_eq!(ring.signing(999).key.kid(), ka);
        assert_eq!(kids(ring.published(999, 3600)), [ka.clone(), kb.clone()]);
        // From b's activation: b signs, a stays published for the lifetime...
        assert_eq!(ring.signing(1000).key.kid(), kb);
        assert_eq!(kids(ring.published(1000, 3600)), [ka.clone(), kb.clone()]);
        assert_eq!(kids(ring.published(4599, 3600)), [ka, kb.clone()]);
        // ...and is dropped after it.
        assert_eq!(kids(ring.published(4600, 3600)), [kb]);
    }

    /// With no key active yet, the oldest signs (a clock behind the file names still works).
    #[test]
    fn future_only_ring_signs_with_the_oldest() {
        let (a, b) = (key(5000), key(9000));
        let ka = a.key.kid().to_string();
        let ring = Ring::new(vec![b, a]).unwrap();
        assert_eq!(ring.signing(10).key.kid(), ka);
        assert_eq!(ring.published(10, 60).count(), 2);
    }

    /// File names carry activation times; other names mean "from the start".
    #[test]
    fn activation_from_file_names() {
        assert_eq!(
            active_from_name(Path::new("/k/key-1767225600.pem")),
            1767225600
        );
        assert_eq!(active_from_name(Path::new("signing-key.pem")), 0);
        assert_eq!(active_from_name(Path::new("key-.pem")), 0);
        assert_eq!(active_from_name(Path::new("key-12ab.pem")), 0);
        assert_eq!(key_file_name(42), "key-42.pem");
    }

    /// An empty key directory gets one key (mode 0600), which the next load finds again:
    /// the key survives a restart.
    #[test]
    fn empty_dir_gets_a_persistent_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pfc-keyring-{}", ulid::Ulid::new()));
        let source = KeySource {
            file: None,
            dir: Some(dir.clone()),
        };
        let first = source.load(1234).unwrap();
        let again = source.load(9999).unwrap();
        assert_eq!(first.keys().len(), 1);
        assert_eq!(
            first.keys()[0].key.kid(),
            again.keys()[0].key.kid(),
            "same key after a restart"
        );
        let file = dir.join("key-1234.pem");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Rotation: a second key scheduled for later joins the ring.
        write_new_key(&dir, 5000).unwrap();
        let ring = source.load(9999).unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert_eq!(ring.signing(9999).active_from, 5000);
        // A key for a second that already has one never replaces it: it takes the next second.
        let path = write_new_key(&dir, 5000).unwrap();
        assert!(path.ends_with("key-5001.pem"), "{}", path.display());
        assert_eq!(source.load(9999).unwrap().keys().len(), 3);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            3,
            "no temporary file left"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
