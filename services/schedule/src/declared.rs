//! Schedules declared in a file (`--schedules-file`, the chart's `jobs.schedules`), applied at
//! every `pfc jobs` start so they exist after a fresh install.
//!
//! The file is JSON: `{"schedules": [{"name": "nightly", "cron": "0 3 * * *", "time_zone":
//! "Europe/Berlin", "job": {"kind": "report", "payload": {"scope": "all"}}}]}`. A declared
//! schedule is created when missing and its definition replaced when it changed; a pause set
//! through the API is kept. Schedules missing from the file are left alone.

use pfc_proto::jobs::v1::SubmitJobRequest;
use serde::Deserialize;

use crate::spec::Spec;
use crate::{CatchUp, Result, Schedule, ScheduleError, ScheduleStore, Source};

/// The file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredSchedules {
    /// The schedules.
    #[serde(default)]
    pub schedules: Vec<DeclaredSchedule>,
}

/// One declared schedule: `cron` (with `time_zone`) or `every` (a humantime duration).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredSchedule {
    /// Unique name.
    pub name: String,
    /// Cron expression (5 or 6 fields).
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone of `cron` (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Fixed interval, e.g. `"30s"`, `"1h"`, instead of `cron`.
    #[serde(default)]
    pub every: Option<String>,
    /// `fire_once` (default) or `skip`.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Start paused (only when the schedule is created).
    #[serde(default)]
    pub paused: bool,
    /// The job each tick submits.
    pub job: DeclaredJob,
}

/// The job of a declared schedule (the fields of `SubmitJobRequest` that make sense here).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredJob {
    /// Kind (default `uppercase`).
    #[serde(default)]
    pub kind: String,
    /// Text input.
    #[serde(default)]
    pub text: String,
    /// JSON input instead of text.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    /// Queue (default `default`).
    #[serde(default)]
    pub queue: String,
    /// Deliveries allowed (0 = the server's default).
    #[serde(default)]
    pub max_attempts: u32,
}

/// A declared schedule that cannot be accepted; says which and why.
#[derive(Debug, thiserror::Error)]
#[error("schedule {name:?} in the schedules file: {message}")]
pub struct DeclaredError {
    /// The schedule.
    pub name: String,
    /// Why.
    pub message: String,
}

impl DeclaredSchedules {
    /// Reads and parses a file; errors name the file.
    pub fn load(path: &std::path::Path) -> std::result::Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("failed to read schedules file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("schedules file {}: {e}", path.display()))
    }

    /// Parses the JSON text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

impl DeclaredSchedule {
    /// The schedule this declares (spec checked; the job template is checked by the caller
    /// with the jobs core's submit rules). `now_ms` anchors an interval.
    pub fn to_schedule(&self, now_ms: i64) -> std::result::Result<Schedule, DeclaredError> {
        let bad = |message: String| DeclaredError {
            name: self.name.clone(),
            message,
        };
        let spec = match (&self.cron, &self.every) {
            (Some(c), None) => Spec::cron(c, self.time_zone.as_deref().unwrap_or(""))
                .map_err(|e| bad(e.to_string()))?,
            (None, Some(e)) => {
                let d = humantime_ms(e).ok_or_else(|| {
                    bad(format!(
                        "every: {e:?} is not a duration like \"30s\" or \"1h\""
                    ))
                })?;
                Spec::every(d, now_ms).map_err(|e| bad(e.to_string()))?
            }
            _ => return Err(bad("set exactly one of cron and every".into())),
        };
        let payload = match &self.job.payload {
            Some(v) => serde_json::to_vec(v).map_err(|e| bad(e.to_string()))?,
            None => Vec::new(),
        };
        Ok(Schedule {
            name: self.name.clone(),
            spec,
            job: SubmitJobRequest {
                kind: self.job.kind.clone(),
                text: self.job.text.clone(),
                payload,
                queue: self.job.queue.clone(),
                max_attempts: self.job.max_attempts,
                ..Default::default()
            },
            catch_up: self.catch_up,
            paused: self.paused,
            source: Source::Config,
            created_ms: now_ms,
        })
    }
}

/// `"30s"`, `"1h 30m"`, `"500ms"` → ms (humantime's syntax, as every pfc duration flag).
fn humantime_ms(s: &str) -> Option<i64> {
    let d = humantime::parse_duration(s).ok()?;
    i64::try_from(d.as_millis()).ok().filter(|ms| *ms > 0)
}

/// Creates each declared schedule that is missing and replaces the definition of each that
/// changed (keeping its pause and, for an unchanged spec, its next tick). Safe to run from
/// every replica at once: create and replace are compare-and-set.
pub async fn apply(store: &dyn ScheduleStore, declared: &[Schedule]) -> Result<()> {
    for want in declared {
        for _ in 0..5 {
            let now = store.now().await?;
            match store.get(&want.name).await? {
                None => {
                    let mut s = want.clone();
                    s.created_ms = now;
                    if let Spec::Every { anchor_ms, .. } = &mut s.spec {
                        *anchor_ms = now;
                    }
                    let next = if s.paused {
                        None
                    } else {
                        s.spec.next_after(now)
                    };
                    match store.create(&s, next).await {
                        Err(ScheduleError::AlreadyExists(_)) => continue,
                        r => {
                            r?;
                            tracing::info!(schedule = %s.name, "declared schedule created");
                            break;
                        }
                    }
                }
                Some(cur) if cur.schedule.same_definition(want) => break,
                Some(cur) => {
                    let mut s = want.clone();
                    s.paused = cur.schedule.paused;
                    s.created_ms = cur.schedule.created_ms;
                    if let Spec::Every { anchor_ms, .. } = &mut s.spec {
                        *anchor_ms = now;
                    }
                    let next = if s.paused {
                        None
                    } else {
                        s.spec.next_after(now)
                    };
                    if store.replace(&cur.schedule, &s, Some(next)).await? {
                        tracing::info!(schedule = %s.name, "declared schedule updated");
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file format: cron or every, unknown fields refused, durations parsed.
    #[test]
    fn parses_the_file() {
        let f = DeclaredSchedules::parse(
            r#"{"schedules":[
              {"name":"a","cron":"0 3 * * *","time_zone":"Europe/Berlin","job":{"kind":"report","payload":{"x":1}}},
              {"name":"b","every":"1m 30s","catch_up":"skip","job":{"text":"hi"}}]}"#,
        )
        .unwrap();
        let a = f.schedules[0].to_schedule(0).unwrap();
        assert_eq!(a.job.payload, br#"{"x":1}"#);
        let b = f.schedules[1].to_schedule(5).unwrap();
        assert_eq!(
            b.spec,
            Spec::Every {
                every_ms: 90_000,
                anchor_ms: 5
            }
        );
        assert_eq!(b.catch_up, CatchUp::Skip);
        assert!(
            DeclaredSchedules::parse(r#"{"schedules":[{"name":"x","job":{},"bogus":1}]}"#).is_err()
        );
        let none = DeclaredSchedules::parse(r#"{"schedules":[{"name":"x","job":{}}]}"#).unwrap();
        assert!(none.schedules[0].to_schedule(0).is_err());
        assert_eq!(humantime_ms("500ms"), Some(500));
        assert_eq!(humantime_ms("2h"), Some(7_200_000));
        assert_eq!(humantime_ms("x"), None);
        assert_eq!(humantime_ms("10"), None);
    }
}
