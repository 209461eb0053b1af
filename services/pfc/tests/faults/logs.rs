//! Reading the workers' JSON logs (`PFC_LOG_FORMAT=json`) into history: the worker's id
//! ("worker started"), one [`Run`] per "job finished" line, one [`StaleReport`] per
//! "report ignored" line.

use serde_json::Value;

use super::checker::{Run, RunOutcome, StaleReport};

/// What one worker process logged.
#[derive(Clone, Debug, Default)]
pub struct WorkerLog {
    /// The worker's id, once it logged "worker started".
    pub worker: Option<String>,
    /// Processor runs.
    pub runs: Vec<Run>,
    /// Reports the store refused.
    pub stale: Vec<StaleReport>,
    /// Lines that were not JSON (a line cut by `kill -9` is at most the last one).
    pub garbled: usize,
}

/// Parses one worker's log.
pub fn parse(text: &str) -> WorkerLog {
    let mut log = WorkerLog::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            log.garbled += 1;
            continue;
        };
        let fields = &v["fields"];
        let str_field = |k: &str| fields[k].as_str().map(str::to_owned);
        match fields["message"].as_str() {
            Some("worker started") => log.worker = str_field("worker"),
            Some("job finished") => {
                // the fencing token is `attempt` today (what the store's `attempts` says);
                // a `delivery` number is used when no `attempt` is logged
                let token = ["attempt", "delivery"]
                    .iter()
                    .find_map(|k| match &fields[*k] {
                        Value::Number(n) => n.as_u64(),
                        Value::String(s) => s.parse().ok(),
                        _ => None,
                    });
                let outcome = match fields["outcome"].as_str() {
                    Some("done") => Some(RunOutcome::Done),
                    Some("retry") => Some(RunOutcome::Retry),
                    Some("fail") => Some(RunOutcome::Fail),
                    _ => None,
                };
                let at = v["timestamp"].as_str().and_then(unix_ms);
                match (str_field("job_id"), token, str_field("worker"), outcome, at) {
                    (Some(job_id), Some(attempt), Some(worker), Some(outcome), Some(at_ms)) => {
                        log.runs.push(Run {
                            job_id,
                            attempt,
                            worker,
                            outcome,
                            at_ms,
                        })
                    }
                    _ => log.garbled += 1,
                }
            }
            Some(m) if m.starts_with("report ignored") => {
                if let Some(job_id) = str_field("job_id") {
                    log.stale.push(StaleReport {
                        job_id,
                        worker: log.worker.clone().unwrap_or_default(),
                    });
                }
            }
            _ => {}
        }
    }
    log
}

/// Unix milliseconds of an RFC 3339 UTC time as tracing-subscriber writes it
/// (`2025-03-01T12:34:56.123456Z`; offsets other than `Z`/`+00:00` are refused).
pub fn unix_ms(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let millis = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse::<i64>().ok()?
    };
    // days from the civil date (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps convert to Unix ms (checked against `date -d ... +%s%3N`).
    #[test]
    fn timestamps() {
        assert_eq!(unix_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_ms("2025-03-01T12:34:56.123456Z"),
            Some(1_740_832_496_123)
        );
        assert_eq!(unix_ms("2024-02-29T23:59:59.9Z"), Some(1_709_251_199_900));
        assert_eq!(unix_ms("2024-02-29T23:59:59+02:00"), None);
        assert_eq!(unix_ms("garbage"), None);
    }

    /// The worker id, runs (either token name), stale reports and a line cut by kill -9.
    #[test]
    fn worker_log_lines() {
        let text = r#"{"timestamp":"2025-03-01T12:34:56.000001Z","level":"INFO","fields":{"message":"worker started","worker":"host-abc123","concurrency":8},"target":"pfc_worker::worker"}
{"timestamp":"2025-03-01T12:34:57.5Z","level":"INFO","fields":{"message":"job finished","job_id":"01J1","attempt":2,"worker":"host-abc123","outcome":"done"},"target":"pfc_worker::worker"}
{"timestamp":"2025-03-01T12:34:58Z","level":"INFO","fields":{"message":"job finished","job_id":"01J2","delivery":7,"worker":"host-abc123","outcome":"retry"},"target":"pfc_worker::worker"}
{"timestamp":"2025-03-01T12:34:59Z","level":"WARN","fields":{"message":"report ignored: lease was lost","job_id":"01J1","attempt":2},"target":"pfc_worker::worker"}
{"timestamp":"2025-03-01T12:35:00Z","level":"INFO","fields":{"message":"job fin"#;
        let log = parse(text);
        assert_eq!(log.worker.as_deref(), Some("host-abc123"));
        assert_eq!(log.runs.len(), 2);
        let r = &log.runs[0];
        assert_eq!(
            (r.job_id.as_str(), r.attempt, r.outcome, r.at_ms),
            ("01J1", 2, RunOutcome::Done, 1_740_832_497_500)
        );
        assert_eq!(
            (log.runs[1].attempt, log.runs[1].outcome),
            (7, RunOutcome::Retry)
        );
        assert_eq!(log.stale.len(), 1);
        assert_eq!(log.stale[0].worker, "host-abc123");
        assert_eq!(log.garbled, 1);
    }
}
