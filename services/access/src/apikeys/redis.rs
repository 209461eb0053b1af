//! [`RedisKeyStore`]: key records in the job store's Redis, shared by every jobs replica.
//!
//! Layout: `pfc:apikey:<id>` holds the record as JSON; the set `pfc:apikeys` holds the ids.
//! Every command touches one key, so the store works unchanged on a Redis Cluster (the two
//! writes of a create are separate calls: a crash between them leaves a record that is not
//! listed but still verifies, and revoke by id still finds it).

use pfc_redis::{Backend, Conns};
use redis::RedisError;

use super::{KeyRecord, KeyStore};
use crate::AccessError;

/// The set of key ids.
const INDEX: &str = "pfc:apikeys";

fn record_key(id: &str) -> String {
    format!("pfc:apikey:{id}")
}

/// Records in Redis (a single node or a cluster), over pfc's one connection layer.
pub struct RedisKeyStore {
    conns: Conns,
}

impl std::fmt::Debug for RedisKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKeyStore").finish_non_exhaustive()
    }
}

fn unavailable(e: RedisError) -> AccessError {
    tracing::warn!(error = %e, "API key store unavailable");
    AccessError::Unavailable("API key store unavailable, retry later".into())
}

impl RedisKeyStore {
    /// Connects (lazily) to `url` (password included; a cluster's comma-separated seeds when
    /// `cluster`).
    pub fn new(url: &str, cluster: bool) -> Result<Self, RedisError> {
        Ok(Self::on(Backend::open(url, cluster)?))
    }

    /// A store on an already opened backend.
    pub fn on(backend: Backend) -> Self {
        Self {
            conns: Conns::new(backend),
        }
    }

    /// Runs one command (a connection-level error makes the next call reconnect).
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, AccessError> {
        let result = async {
            let mut conn = self.conns.get().await?;
            cmd.query_async(&mut conn).await
        }
        .await;
        self.conns.check(result).map_err(unavailable)
    }
}

fn encode(record: &KeyRecord) -> Result<String, AccessError> {
    serde_json::to_string(record)
        .map_err(|e| AccessError::Unavailable(format!("cannot encode API key record: {e}")))
}

fn decode(json: &str) -> Result<KeyRecord, AccessError> {
    serde_json::from_str(json)
        .map_err(|_| AccessError::Unavailable("corrupt API key record".into()))
}

#[async_trait::async_trait]
impl KeyStore for RedisKeyStore {
    async fn put(&self, record: &KeyRecord) -> Result<(), AccessError> {
        let json = encode(record)?;
        self.query::<()>(redis::cmd("SET").arg(record_key(&record.id)).arg(json))
            .await?;
        self.query::<()>(redis::cmd("SADD").arg(INDEX).arg(&record.id))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, AccessError> {
        let json: Option<String> = self.query(redis::cmd("GET").arg(record_key(id))).await?;
        json.as_deref().map(decode).transpose()
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, AccessError> {
        let ids: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(INDEX)).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.get(&id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn revoke(&self, id: &str, at_ms: i64) -> Result<bool, AccessError> {
        let Some(mut record) = self.get(id).await? else {
            return Ok(false);
        };
        if record.revoked_ms.is_none() {
            record.revoked_ms = Some(at_ms);
            let json = encode(&record)?;
            self.query::<()>(redis::cmd("SET").arg(record_key(id)).arg(json))
                .await?;
        }
        Ok(true)
    }
}
