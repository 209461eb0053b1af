//! Access control for the jobs side of pfc: who may call which `JobService` and
//! `WorkerService` method (issue 17, docs/security.md).
//!
//! Credentials are verified locally: Login tokens (EdDSA JWTs) with the auth role's public
//! keys ([`pfc_auth::Keys`], the same verifier chat uses), and API keys against their salted
//! hashes in the key store. Every guarded method needs one scope, looked up in one table
//! ([`policy::METHODS`]); a method missing from the table is refused, so a new RPC is closed
//! until someone decides who may call it.
//!
//! # Layout
//! - [`AccessArgs`] (`config.rs`): `--auth-required` / `PFC_AUTH_REQUIRED` and friends.
//! - [`AccessError`] (`error.rs`): why a call is refused, mapped to gRPC codes in one place.
//! - [`policy`]: the method → scope table and the paths that stay public.
//! - [`Caller`] (`caller.rs`): who a verified credential says is calling, put in the request's
//!   extensions for the services (e.g. the kinds a worker key may run).
//! - [`Authenticator`] (`authenticator.rs`): bearer value → [`Caller`] (JWT or API key).
//! - [`apikeys`]: API keys (`pfc_<id>_<secret>`), hashed, in memory or Redis.
//! - [`ApiKeyGrpc`] (`grpc.rs`): `pfc.jobs.v1.ApiKeyService` (create, list, revoke).
//! - [`GuardLayer`] (`guard.rs`): the tower layer in front of the gRPC routes.

pub mod apikeys;
mod authenticator;
mod caller;
mod config;
mod error;
mod grpc;
mod guard;
pub mod policy;

pub use apikeys::ApiKeys;
pub use authenticator::{bearer_of, require, Authenticator};
pub use caller::{Caller, Credential};
pub use config::AccessArgs;
pub use error::AccessError;
pub use grpc::{ApiKeyGrpc, MAX_KINDS};
pub use guard::{guard_routes, Guard, GuardLayer};
pub use pfc_auth::{Scope, Scopes};
