//! pfc's gRPC API: the code generated from the `.proto` files under `proto/pfc/`, the one
//! source of truth for every service, the REST gateway and the web UI.
//!
//! # Layout
//! - `pfc/jobs/v1/jobs.proto` → [`jobs::v1`]: `JobService`; `schedules.proto`: `ScheduleService`.
//! - `pfc/auth/v1/auth.proto` → [`auth::v1`]: `AuthService`.
//! - `pfc/chat/v1/chat.proto` → [`chat::v1`]: `ChatService`, `PresenceService`.
//! - `pfc/worker/v1/worker.proto` → [`worker::v1`]: `WorkerService` (the worker protocol).
//! - [`codec`]: the prost codec all services use (decode errors are `INVALID_ARGUMENT`).
//! - [`FILE_DESCRIPTOR_SET`]: every file, for server reflection.
#![allow(missing_docs)] // generated code carries the .proto comments; the rest is documented
#![allow(clippy::large_enum_variant)] // generated oneofs: a result next to a small error is normal

pub mod codec;

/// Jobs API (`pfc.jobs.v1`).
pub mod jobs {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("pfc.jobs.v1");
    }
}

/// Auth API (`pfc.auth.v1`).
pub mod auth {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("pfc.auth.v1");
    }
}

/// Chat API (`pfc.chat.v1`).
pub mod chat {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("pfc.chat.v1");
    }
}

/// Worker protocol (`pfc.worker.v1`).
pub mod worker {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("pfc.worker.v1");
    }
}

/// Encoded `FileDescriptorSet` of every pfc `.proto` (and its imports), for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pfc_descriptor.bin"));

/// Milliseconds since the Unix epoch to a protobuf timestamp.
pub fn timestamp_from_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf timestamp to milliseconds since the Unix epoch (saturating).
pub fn timestamp_to_ms(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Millisecond timestamps survive the round trip, including before the epoch.
    #[test]
    fn timestamp_round_trip() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1, -1001] {
            assert_eq!(timestamp_to_ms(&timestamp_from_ms(ms)), ms);
        }
    }
}
