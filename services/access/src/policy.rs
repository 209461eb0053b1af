//! Which scope each gRPC method needs: the one table ([`METHODS`]) every guard reads.
//!
//! Paths are `/<package>.<Service>/<Method>`. Three kinds of paths:
//! - **open**: health, reflection (probes and tooling), and the services that check
//!   credentials themselves (`pfc.auth.*`: Login must be reachable to get a token;
//!   `pfc.chat.*`: every chat call verifies its token);
//! - **guarded**: every method of a [`GUARDED_PACKAGES`] service listed in [`METHODS`];
//! - **denied**: a guarded-package method not in the table, and any other path. A new RPC is
//!   therefore closed until one line here says who may call it.

use pfc_auth::Scope;

/// The scope each guarded method needs. Adding an RPC = adding one line.
pub const METHODS: &[(&str, Scope)] = &[
    ("/pfc.jobs.v1.JobService/SubmitJob", Scope::JobsWrite),
    ("/pfc.jobs.v1.JobService/SubmitJobs", Scope::JobsWrite),
    ("/pfc.jobs.v1.JobService/SubmitJobs", Scope::JobsWrite),
    ("/pfc.jobs.v1.JobService/GetJob", Scope::JobsRead),
    ("/pfc.jobs.v1.JobService/WatchJob", Scope::JobsRead),
    ("/pfc.jobs.v1.JobService/WatchJobs", Scope::JobsRead),
    ("/pfc.jobs.v1.JobService/ListJobs", Scope::JobsRead),
    ("/pfc.jobs.v1.JobService/GetStats", Scope::JobsRead),
    ("/pfc.jobs.v1.JobService/ListKinds", Scope::JobsRead),
    ("/pfc.jobs.v1.JobService/CancelJob", Scope::JobsAdmin),
    // Issue 13 (queues, job operations): reads need jobs:read, everything else jobs:admin.
    ("/pfc.jobs.v1.JobService/ListQueues", Scope::JobsRead),
    ("/pfc.jobs.v1.JobService/RetryJob", Scope::JobsAdmin),
    ("/pfc.jobs.v1.JobService/RetryJobs", Scope::JobsAdmin),
    ("/pfc.jobs.v1.JobService/DeleteJob", Scope::JobsAdmin),
    ("/pfc.jobs.v1.JobService/DeleteJobs", Scope::JobsAdmin),
    ("/pfc.jobs.v1.JobService/PauseQueue", Scope::JobsAdmin),
    ("/pfc.jobs.v1.JobService/ResumeQueue", Scope::JobsAdmin),
    ("/pfc.jobs.v1.JobService/UpdateQueue", Scope::JobsAdmin),
    ("/pfc.jobs.v1.QueueService/ListQueues", Scope::JobsRead),
    ("/pfc.jobs.v1.QueueService/PauseQueue", Scope::JobsAdmin),
    ("/pfc.jobs.v1.QueueService/ResumeQueue", Scope::JobsAdmin),
    ("/pfc.jobs.v1.QueueService/UpdateQueue", Scope::JobsAdmin),
    // API keys (this issue): managing credentials is an admin task.
    ("/pfc.jobs.v1.ApiKeyService/CreateApiKey", Scope::JobsAdmin),
    ("/pfc.jobs.v1.ApiKeyService/ListApiKeys", Scope::JobsAdmin),
    ("/pfc.jobs.v1.ApiKeyService/RevokeApiKey", Scope::JobsAdmin),
    // Schedules (issue 16): reading needs jobs:read; a schedule submits jobs on its own for
    // as long as it exists, so creating, pausing and deleting one is jobs:admin.
    ("/pfc.jobs.v1.ScheduleService/GetSchedule", Scope::JobsRead),
    (
        "/pfc.jobs.v1.ScheduleService/ListSchedules",
        Scope::JobsRead,
    ),
    (
        "/pfc.jobs.v1.ScheduleService/CreateSchedule",
        Scope::JobsAdmin,
    ),
    (
        "/pfc.jobs.v1.ScheduleService/UpdateSchedule",
        Scope::JobsAdmin,
    ),
    (
        "/pfc.jobs.v1.ScheduleService/DeleteSchedule",
        Scope::JobsAdmin,
    ),
    // The worker protocol.
    ("/pfc.worker.v1.WorkerService/Work", Scope::Worker),
];

/// Packages whose services this table guards.
pub const GUARDED_PACKAGES: &[&str] = &["pfc.jobs.", "pfc.worker."];

/// Path prefixes that are never guarded here (see the module docs for why).
pub const OPEN_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/pfc.auth.",
    "/pfc.chat.",
];

/// What a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No credential checked here.
    Open,
    /// A credential with this scope.
    Requires(Scope),
    /// Refused whatever the credential: not in the table.
    Deny,
}

/// The rule for a gRPC request path.
pub fn rule(path: &str) -> Rule {
    if OPEN_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return Rule::Open;
    }
    match METHODS.iter().find(|(m, _)| *m == path) {
        Some((_, scope)) => Rule::Requires(*scope),
        None => Rule::Deny,
    }
}

/// True when `service` (`package.Service`) belongs to a guarded package.
pub fn is_guarded_service(service: &str) -> bool {
    GUARDED_PACKAGES.iter().any(|p| service.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads, writes, admin operations and the worker protocol need their scopes; health is
    /// open; unknown methods of guarded services, and unknown services, are denied.
    #[test]
    fn rules() {
        assert_eq!(
            rule("/pfc.jobs.v1.JobService/SubmitJob"),
            Rule::Requires(Scope::JobsWrite)
        );
        assert_eq!(
            rule("/pfc.jobs.v1.JobService/GetJob"),
            Rule::Requires(Scope::JobsRead)
        );
        assert_eq!(
            rule("/pfc.jobs.v1.JobService/CancelJob"),
            Rule::Requires(Scope::JobsAdmin)
        );
        assert_eq!(
            rule("/pfc.worker.v1.WorkerService/Work"),
            Rule::Requires(Scope::Worker)
        );
        assert_eq!(rule("/grpc.health.v1.Health/Check"), Rule::Open);
        assert_eq!(rule("/pfc.auth.v1.AuthService/Login"), Rule::Open);
        assert_eq!(rule("/pfc.jobs.v1.JobService/PurgeEverything"), Rule::Deny);
        assert_eq!(rule("/other.Service/Method"), Rule::Deny);
        assert_eq!(rule("/pfc.jobs.v1.JobService/SubmitJobX"), Rule::Deny);
    }

    /// Every method of every guarded service in the proto crate has a line in [`METHODS`]
    /// (else it would be refused to everyone once access control is on). A new RPC fails
    /// here until its line is added.
    #[test]
    fn every_guarded_method_is_mapped() {
        use prost::Message as _;
        let fds = prost_types::FileDescriptorSet::decode(pfc_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut missing = Vec::new();
        for file in &fds.file {
            for svc in &file.service {
                let service = format!("{}.{}", file.package(), svc.name());
                if !is_guarded_service(&service) {
                    continue;
                }
                for m in &svc.method {
                    let path = format!("/{service}/{}", m.name());
                    if rule(&path) == Rule::Deny {
                        missing.push(path);
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "add these methods to pfc_access::policy::METHODS with the scope they need: {missing:?}"
        );
    }
}
