//! [`MemoryKeyStore`]: key records in this process (`pfc dev` without Redis, tests).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{KeyRecord, KeyStore};
use crate::AccessError;

/// Records in a map; gone when the process ends.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    records: Mutex<HashMap<String, KeyRecord>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyRecord>> {
        // A poisoned lock only means a panic while inserting; the map is still consistent.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl KeyStore for MemoryKeyStore {
    async fn put(&self, record: &KeyRecord) -> Result<(), AccessError> {
        self.map().insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, AccessError> {
        Ok(self.map().get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, AccessError> {
        Ok(self.map().values().cloned().collect())
    }

    async fn revoke(&self, id: &str, at_ms: i64) -> Result<bool, AccessError> {
        Ok(match self.map().get_mut(id) {
            Some(r) => {
                r.revoked_ms.get_or_insert(at_ms);
                true
            }
            None => false,
        })
    }
}
