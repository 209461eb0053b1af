//! [`Client`]: submit jobs, read them, wait for or watch them, cancel them.

use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::job_service_client::JobServiceClient;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::job::JSON;
use crate::Error;

/// Where a job is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for its run time (a delay, or a retry's backoff).
    Scheduled,
    /// Waiting for a worker of its kind.
    Queued,
    /// Leased by a worker.
    Processing,
    /// Finished with a result.
    Done,
    /// Failed for good (permanent error, or out of attempts).
    Failed,
    /// Cancelled before it ran.
    Cancelled,
}

impl JobStatus {
    /// Done, failed and cancelled jobs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    fn from_pb(s: i32) -> Option<Self> {
        Some(match pb::JobStatus::try_from(s).ok()? {
            pb::JobStatus::Unspecified => return None,
            pb::JobStatus::Scheduled => JobStatus::Scheduled,
            pb::JobStatus::Queued => JobStatus::Queued,
            pb::JobStatus::Processing => JobStatus::Processing,
            pb::JobStatus::Done => JobStatus::Done,
            pb::JobStatus::Failed => JobStatus::Failed,
            pb::JobStatus::Cancelled => JobStatus::Cancelled,
        })
    }
}

/// A job as the jobs core knows it (a wrapper over the protobuf `Job` with typed access).
#[derive(Clone, Debug, PartialEq)]
pub struct JobInfo(pub pb::Job);

impl JobInfo {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// Its kind.
    pub fn kind(&self) -> &str {
        &self.0.kind
    }

    /// Its status (`Queued` for a value this SDK does not know yet).
    pub fn status(&self) -> JobStatus {
        JobStatus::from_pb(self.0.status).unwrap_or(JobStatus::Queued)
    }

    /// True once done, failed or cancelled.
    pub fn is_terminal(&self) -> bool {
        self.status().is_terminal()
    }

    /// Deliveries so far.
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }

    /// The last error (set when a delivery failed).
    pub fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// Progress reported by the worker running it (0–100).
    pub fn progress(&self) -> Option<u32> {
        self.0.progress
    }

    /// The worker holding, or that last held, the job.
    pub fn worker_id(&self) -> &str {
        &self.0.worker_id
    }

    /// The result decoded from JSON (`None` until done, or when the job has no result).
    /// A text result is decoded as a JSON string.
    pub fn result_json<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        if let Some(text) = &self.0.result {
            return Ok(Some(serde_json::from_value(serde_json::Value::String(
                text.clone(),
            ))?));
        }
        if self.0.result_payload.is_empty() && self.0.result_content_type.is_empty() {
            return Ok(None);
        }
        let ct = self.0.result_content_type.as_str();
        if !(ct.is_empty() || ct.eq_ignore_ascii_case(JSON)) {
            return Err(Error::NotJson(ct.to_owned()));
        }
        Ok(Some(serde_json::from_slice(&self.0.result_payload)?))
    }

    /// A text result (jobs whose handler returned text, like the built-in kinds).
    pub fn result_text(&self) -> Option<&str> {
        self.0.result.as_deref()
    }

    /// A result of another content type: bytes and content type.
    pub fn result_bytes(&self) -> Option<(&[u8], &str)> {
        (!self.0.result_content_type.is_empty()).then_some((
            self.0.result_payload.as_slice(),
            self.0.result_content_type.as_str(),
        ))
    }

    /// When the job was accepted.
    pub fn created_at(&self) -> Option<SystemTime> {
        self.0.created_at.as_ref().map(to_system_time)
    }
}

fn to_system_time(t: &prost_types::Timestamp) -> SystemTime {
    let d = Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32);
    SystemTime::UNIX_EPOCH + d
}

/// A submit with options beyond kind and payload.
#[derive(Clone, Debug, Default)]
pub struct Submit {
    req: pb::SubmitJobRequest,
}

impl Submit {
    /// A job of `kind` whose input is `payload` as JSON.
    pub fn json<T: Serialize + ?Sized>(kind: &str, payload: &T) -> Result<Self, Error> {
        Ok(Self {
            req: pb::SubmitJobRequest {
                kind: kind.into(),
                payload: serde_json::to_vec(payload)?,
                content_type: JSON.into(),
                ..Default::default()
            },
        })
    }

    /// A text job of `kind` (the built-in kinds take text).
    pub fn text(kind: &str, text: &str) -> Self {
        Self {
            req: pb::SubmitJobRequest {
                kind: kind.into(),
                text: text.into(),
                ..Default::default()
            },
        }
    }

    /// A job whose input is `bytes` of `content_type`, passed through as is.
    pub fn bytes(kind: &str, bytes: Vec<u8>, content_type: &str) -> Self {
        Self {
            req: pb::SubmitJobRequest {
                kind: kind.into(),
                payload: bytes,
                content_type: content_type.into(),
                ..Default::default()
            },
        }
    }

    /// Submitting again with the same key returns the first job instead of a new one.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.req.idempotency_key = key.into();
        self
    }

    /// Run no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.req.delay = Some(prost_types::Duration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        });
        self
    }

    /// Deliveries allowed before the job fails (server default: 3).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.req.max_attempts = n;
        self
    }

    /// The request as it will be sent.
    pub fn into_request(self) -> pb::SubmitJobRequest {
        self.req
    }
}

/// A client of the jobs core's `pfc.jobs.v1.JobService`. Cheap to clone (one HTTP/2
/// connection, shared).
///
/// ```no_run
/// # async fn demo() -> Result<(), pfc_sdk::Error> {
/// let client = pfc_sdk::Client::connect("http://127.0.0.1:50051").await?;
/// let id = client.submit("resize", &serde_json::json!({"w": 64})).await?;
/// let job = client.wait(&id, std::time::Duration::from_secs(30)).await?;
/// println!("{:?} {:?}", job.status(), job.result_json::<serde_json::Value>()?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: JobServiceClient<Channel>,
}

/// An endpoint for `url` with the SDK's connection settings: `TCP_NODELAY`, a 5 s connect
/// timeout, HTTP/2 keepalive pings (a dead server is noticed within ~20 s).
pub(crate) fn endpoint(url: &str) -> Result<Endpoint, Error> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::InvalidUrl {
            url: url.into(),
            reason: "use http://host:port (or https://)".into(),
        });
    }
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|e| Error::InvalidUrl {
            url: url.into(),
            reason: e.to_string(),
        })?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

impl Client {
    /// Connects to the jobs core at `url` (e.g. `http://127.0.0.1:50051`).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let channel = endpoint(url)?
            .connect()
            .await
            .map_err(|source| Error::Connect {
                url: url.into(),
                source,
            })?;
        Ok(Self::from_channel(channel))
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            inner: JobServiceClient::new(channel),
        }
    }

    /// Submits a job of `kind` with `payload` as JSON; returns its id. A kind no worker has
    /// declared yet is accepted: the job waits queued until one connects.
    pub async fn submit<T: Serialize + ?Sized>(
        &self,
        kind: &str,
        payload: &T,
    ) -> Result<String, Error> {
        self.submit_with(Submit::json(kind, payload)?).await
    }

    /// Submits a text job (the built-in kinds, e.g. `uppercase`); returns its id.
    pub async fn submit_text(&self, kind: &str, text: &str) -> Result<String, Error> {
        self.submit_with(Submit::text(kind, text)).await
    }

    /// Submits with options (idempotency key, delay, attempts, other content types).
    pub async fn submit_with(&self, submit: Submit) -> Result<String, Error> {
        let r = self.inner.clone().submit_job(submit.req).await?;
        Ok(r.into_inner().job_id)
    }

    /// The job now. `NOT_FOUND` (as [`Error::Status`]) for an unknown or expired id.
    pub async fn get(&self, id: &str) -> Result<JobInfo, Error> {
        let r = self
            .inner
            .clone()
            .get_job(pb::GetJobRequest { job_id: id.into() })
            .await?;
        r.into_inner()
            .job
            .map(JobInfo)
            .ok_or_else(|| tonic::Status::internal("GetJob answered without a job").into())
    }

    /// The job's current state, then every change, ending after a terminal state.
    pub async fn watch(
        &self,
        id: &str,
    ) -> Result<impl Stream<Item = Result<JobInfo, Error>> + Send + 'static, Error> {
        let stream = self
            .inner
            .clone()
            .watch_job(pb::WatchJobRequest { job_id: id.into() })
            .await?
            .into_inner();
        Ok(stream.filter_map(|r| async move {
            match r {
                Ok(m) => m.job.map(|j| Ok(JobInfo(j))),
                Err(s) => Some(Err(Error::Status(s))),
            }
        }))
    }

    /// Waits until the job is done, failed or cancelled (watching it, so no polling), for at
    /// most `timeout` ([`Error::Timeout`]). A watch that breaks is opened again.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<JobInfo, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let run = async {
            let mut backoff = Duration::from_millis(50);
            loop {
                match self.watch(id).await {
                    Ok(stream) => {
                        futures::pin_mut!(stream);
                        while let Some(item) = stream.next().await {
                            match item {
                                Ok(job) if job.is_terminal() => return Ok(job),
                                Ok(_) => {}
                                Err(e) if !retryable(&e) => return Err(e),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) if !retryable(&e) => return Err(e),
                    Err(_) => {}
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        };
        match tokio::time::timeout_at(deadline, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                job_id: id.into(),
                timeout,
            }),
        }
    }

    /// Cancels a queued or scheduled job (`FAILED_PRECONDITION` once it runs).
    pub async fn cancel(&self, id: &str) -> Result<JobInfo, Error> {
        let r = self
            .inner
            .clone()
            .cancel_job(pb::CancelJobRequest { job_id: id.into() })
            .await?;
        r.into_inner()
            .job
            .map(JobInfo)
            .ok_or_else(|| tonic::Status::internal("CancelJob answered without a job").into())
    }

    /// The raw generated client, for calls this SDK does not wrap (`ListJobs`, `GetStats`,
    /// `ListKinds`).
    pub fn raw(&self) -> JobServiceClient<Channel> {
        self.inner.clone()
    }
}

/// Transport trouble and overload are worth another try; answers about the request are not.
fn retryable(e: &Error) -> bool {
    matches!(
        e.status().map(|s| s.code()),
        Some(
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Internal
                | tonic::Code::Cancelled
                | tonic::Code::DeadlineExceeded
                | tonic::Code::ResourceExhausted
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results decode by content type: JSON, text as a JSON string, other types refused.
    #[test]
    fn results() {
        let mut j = pb::Job {
            status: pb::JobStatus::Done as i32,
            result_payload: b"{\"ok\":true}".to_vec(),
            result_content_type: JSON.into(),
            ..Default::default()
        };
        let v: serde_json::Value = JobInfo(j.clone()).result_json().unwrap().unwrap();
        assert_eq!(v, serde_json::json!({"ok": true}));
        assert_eq!(JobInfo(j.clone()).status(), JobStatus::Done);
        j.result_content_type = "image/png".into();
        assert!(matches!(
            JobInfo(j.clone()).result_json::<serde_json::Value>(),
            Err(Error::NotJson(_))
        ));
        let t = pb::Job {
            result: Some("HI".into()),
            ..Default::default()
        };
        assert_eq!(JobInfo(t.clone()).result_text(), Some("HI"));
        assert_eq!(
            JobInfo(t).result_json::<String>().unwrap().as_deref(),
            Some("HI")
        );
        assert_eq!(
            JobInfo(pb::Job::default())
                .result_json::<serde_json::Value>()
                .unwrap(),
            None
        );
        assert!(endpoint("localhost:50051").is_err());
    }
}
