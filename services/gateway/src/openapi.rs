//! The OpenAPI 3.1 document (`GET /openapi.json`), generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use crate::{error, model, rest, sse};

/// pfc's REST API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "pfc",
        description = "Asynchronous jobs: a text for the built-in processors, or any JSON \
            value (or bytes) for workers of any kind. REST is a thin layer over the gRPC \
            `pfc.jobs.v1.JobService`; browsers can also call every gRPC service directly over \
            gRPC-web on the same port. Errors are `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        rest::origin_submit, rest::origin_get,
        rest::submit, rest::submit_batch, rest::list, rest::get, rest::cancel, rest::stats, rest::kinds,
        crate::queues::list, crate::queues::pause, crate::queues::resume, crate::queues::limits,
        crate::schedules::create, crate::schedules::list, crate::schedules::get,
        crate::schedules::pause, crate::schedules::resume, crate::schedules::delete,
        sse::job_events, sse::all_events,
        crate::healthz, crate::readyz, crate::readyz_local, crate::metrics::metrics,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail, model::Status, model::Job, model::JobEvent,
        model::OriginSubmit, model::OriginSubmitted, model::OriginJob, model::SubmitJob,
        model::Submitted, model::SubmitJobs, model::SubmittedBatch, model::BatchResult,
        model::JobPage, model::Stats, model::Worker, model::Kind, model::Kinds,
        model::Health, crate::queues::Queue, crate::queues::Queues, crate::queues::Limits,
        crate::schedules::CreateSchedule, crate::schedules::Schedule, crate::schedules::Schedules,
        crate::schedules::ScheduleJob, crate::schedules::CatchUp,
    )),
    tags(
        (name = "origin", description = "Routes compatible with the original FastAPI service"),
        (name = "jobs", description = "The full jobs API"),
        (name = "queues", description = "Named queues"),
        (name = "schedules", description = "Periodic jobs (cron or interval), each tick fired once"),
        (name = "events", description = "Server-Sent Events"),
        (name = "ops", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// The access-control route.
#[derive(OpenApi)]
#[openapi(
    paths(crate::access::auth_config),
    components(schemas(crate::access::AuthConfig))
)]
struct AccessApi;

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::chat::ChatApi::openapi()); // chat routes (src/chat.rs)
    doc.merge(AccessApi::openapi());
    crate::access::document(&mut doc); // bearer scheme, 401/403 on the guarded paths
    Json(doc)
}
