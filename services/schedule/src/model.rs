//! A schedule as stored: its definition (what and when), and its state (next and last fire).

use pfc_proto::jobs::v1::SubmitJobRequest;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::spec::Spec;

/// What to do with ticks that were missed (every scheduler was down, or the store was).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Fire the oldest missed tick once, then continue with the first tick after now.
    #[default]
    FireOnce,
    /// Fire nothing for a tick seen more than [`crate::SKIP_GRACE_MS`] late; continue with
    /// the first tick after now.
    Skip,
}

/// Where a schedule was declared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Created through the API.
    #[default]
    Api,
    /// Declared in a schedules file (or the chart's values) and applied at startup.
    Config,
}

/// A schedule's definition: everything a user sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Unique name (`[a-z0-9][a-z0-9._-]{0,63}`), part of every tick's idempotency key.
    pub name: String,
    /// When it fires.
    pub spec: Spec,
    /// The job each tick submits (its idempotency key, run time and delay are the
    /// scheduler's), stored as the protobuf `SubmitJobRequest` so every field `SubmitJob`
    /// has — today's and later ones — is a schedule's too.
    #[serde(with = "proto_hex")]
    pub job: SubmitJobRequest,
    /// Missed ticks policy.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// A paused schedule fires nothing and has no next tick.
    #[serde(default)]
    pub paused: bool,
    /// Who declared it.
    #[serde(default)]
    pub source: Source,
    /// Creation time (Unix ms, store time).
    pub created_ms: i64,
}

impl Schedule {
    /// The definition as the store keeps it (JSON; compare-and-set compares these bytes).
    pub fn to_json(&self) -> String {
        // serialising plain data with derived impls cannot fail
        serde_json::to_string(self).expect("schedule serialises")
    }

    /// Reads a stored definition.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// The same definition apart from what the API may change later (pause), for deciding
    /// whether a declared schedule changed.
    pub fn same_definition(&self, other: &Schedule) -> bool {
        self.name == other.name
            && same_spec(&self.spec, &other.spec)
            && self.job == other.job
            && self.catch_up == other.catch_up
    }
}

/// Specs are equal ignoring an interval's anchor (re-applying a config file keeps the anchor).
fn same_spec(a: &Spec, b: &Spec) -> bool {
    match (a, b) {
        (Spec::Every { every_ms: x, .. }, Spec::Every { every_ms: y, .. }) => x == y,
        _ => a == b,
    }
}

/// The last tick a scheduler handled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFire {
    /// The tick (Unix ms) — the time in its idempotency key.
    pub tick_ms: i64,
    /// When it was submitted (store time, Unix ms).
    pub at_ms: i64,
    /// The job, when one was submitted.
    #[serde(default)]
    pub job_id: Option<String>,
    /// Why no job was submitted (the template no longer passes validation, say).
    #[serde(default)]
    pub error: Option<String>,
}

/// A schedule with its state.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleState {
    /// The definition.
    pub schedule: Schedule,
    /// The next tick to fire (Unix ms); `None` while paused or when there is none.
    pub next_ms: Option<i64>,
    /// The last tick fired.
    pub last: Option<LastFire>,
}

/// The idempotency key of tick `tick_ms` of schedule `name`: the same for every replica and
/// every retry, so a tick is one job (`docs/design.md`, "Schedules").
pub fn idempotency_key(name: &str, tick_ms: i64) -> String {
    format!("schedule:{name}:{tick_ms}")
}

mod proto_hex {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &SubmitJobRequest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(m.encode_to_vec()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SubmitJobRequest, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        SubmitJobRequest::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
    }
}
