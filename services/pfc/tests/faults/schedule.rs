//! The seeded fault schedule and the job mix: everything random in the suite comes from a
//! [`Rng`] seeded with `PFC_FAULTS_SEED`, so a seed names one schedule and one load.

use std::time::Duration;

use super::checker::{Expect, FaultKind, JobSpec, FAIL_ERROR};

/// SplitMix64: tiny, seedable, and stable forever (a dependency's generator may change its
/// stream between versions, which would change what a seed means).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One planned fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// When, from the start of the load.
    pub at: Duration,
    /// What.
    pub kind: FaultKind,
    /// How long the fault lasts: the pause, or the downtime before the restart.
    pub hold: Duration,
    /// Random bits for picking the target.
    pub pick: u64,
}

/// How long a fault of `kind` lasts. Pauses are longer than the 3 s lease (the point of
/// them); kills are restarted after a short downtime.
fn hold(rng: &mut Rng, kind: FaultKind) -> Duration {
    match kind {
        FaultKind::WorkerKill => rng.millis(300, 1500),
        FaultKind::JobsKill => rng.millis(500, 2500),
        FaultKind::RedisPause => rng.millis(5000, 8000),
        FaultKind::RedisRestart => rng.millis(200, 1500),
        FaultKind::WorkerPause => rng.millis(5000, 8000),
        FaultKind::WorkerTerm => rng.millis(300, 1500),
    }
}

/// The faults for a run of `total`: one at a time, a few seconds apart, every kind once (in
/// a random order) before any repeats, then a second Redis pause when it fits (whether leases
/// expire at the resume is a race, so one pause may not show a lease-clock defect), then
/// random ones; none starting in the first 3.5 s or ending in the last 3 s.
pub fn plan(seed: u64, total: Duration) -> Vec<Planned> {
    let mut rng = Rng::new(seed ^ 0x6661_756c_7473); // "faults"
    let mut first = FaultKind::ALL.to_vec();
    for i in (1..first.len()).rev() {
        first.swap(i, rng.below(i as u64 + 1) as usize);
    }
    first.push(FaultKind::RedisPause);
    let mut out = Vec::new();
    let mut t = rng.millis(3500, 5000);
    for n in 0.. {
        let kind = match first.get(n) {
            Some(k) => *k,
            None => FaultKind::ALL[rng.below(FaultKind::ALL.len() as u64) as usize],
        };
        let hold = hold(&mut rng, kind);
        // a restart takes about a second more than its downtime to be ready again; a
        // graceful stop first drains (its shutdown timeout, 1 s, and the release)
        let busy = hold
            + match kind {
                FaultKind::WorkerTerm => Duration::from_secs(3),
                _ => Duration::from_secs(1),
            };
        if t + busy + Duration::from_secs(3) > total {
            // the remaining time is too short for this one; a shorter kind may still fit
            if n < first.len() {
                continue;
            }
            break;
        }
        out.push(Planned {
            at: t,
            kind,
            hold,
            pick: rng.next_u64(),
        });
        t += busy + rng.millis(1500, 4000);
    }
    out
}

/// The job for sequence number `seq`: a mix of instant `uppercase` jobs, `sleep` jobs (long
/// enough to be in flight when a fault hits; half of them with a single attempt, so a lease
/// that expires while its worker is alive turns into a visible FAILED), and `fail` jobs
/// (which must end FAILED by their processor, after all their attempts).
pub fn job(seed: u64, seq: u64) -> JobSpec {
    let mut rng = Rng::new(seed.rotate_left(17) ^ seq.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let key = format!("faults-{seed}-{seq}");
    let r = rng.unit();
    if r < 0.55 {
        let text = format!("job {seq} of seed {seed}: Grüße, monde!");
        JobSpec {
            key,
            kind: "uppercase".into(),
            expect: Expect::Done(text.to_uppercase()),
            text,
            max_attempts: 3,
        }
    } else if r < 0.92 {
        let ms = 100 + rng.below(1400);
        JobSpec {
            key,
            kind: "sleep".into(),
            text: ms.to_string(),
            max_attempts: if r < 0.75 { 1 } else { 3 },
            expect: Expect::Done(format!("slept {ms} ms")),
        }
    } else {
        JobSpec {
            key,
            kind: "fail".into(),
            text: "fail".into(),
            max_attempts: 2,
            expect: Expect::ProcessorFails(FAIL_ERROR.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seed names one schedule; another seed gives another.
    #[test]
    fn seeded() {
        let a = plan(1, Duration::from_secs(60));
        assert_eq!(a, plan(1, Duration::from_secs(60)));
        assert_ne!(a, plan(2, Duration::from_secs(60)));
        assert_eq!(job(1, 7).text, job(1, 7).text);
    }

    /// A 60 s run gets every kind of fault, one at a time, inside the run.
    #[test]
    fn every_kind_fits_in_a_minute() {
        let mut twice = 0;
        for seed in 0..200 {
            let p = plan(seed, Duration::from_secs(60));
            for k in FaultKind::ALL {
                assert!(p.iter().any(|f| f.kind == k), "seed {seed}: no {k}");
            }
            twice += usize::from(p.iter().filter(|f| f.kind == FaultKind::RedisPause).count() >= 2);
            for w in p.windows(2) {
                assert!(w[0].at + w[0].hold + Duration::from_secs(1) <= w[1].at);
            }
            // the plan leaves 3 s of slack at the end beyond each fault's estimated length
            let last = p.last().unwrap();
            assert!(last.at + last.hold + Duration::from_secs(4) <= Duration::from_secs(60));
            assert!(p[0].at >= Duration::from_millis(3500));
        }
        assert!(
            twice > 150,
            "two Redis pauses in only {twice} of 200 minutes"
        );
    }

    /// A long run repeats faults; pauses always outlast the 3 s lease.
    #[test]
    fn long_runs_repeat_and_pauses_outlast_the_lease() {
        let p = plan(42, Duration::from_secs(600));
        assert!(p.len() > 40, "{} faults", p.len());
        for f in &p {
            if matches!(f.kind, FaultKind::RedisPause | FaultKind::WorkerPause) {
                assert!(f.hold >= Duration::from_secs(5));
            }
        }
    }

    /// The mix has every kind of job, with expected results.
    #[test]
    fn job_mix() {
        let jobs: Vec<JobSpec> = (0..1000).map(|i| job(3, i)).collect();
        let n = |k: &str| jobs.iter().filter(|j| j.kind == k).count();
        assert!(n("uppercase") > 450 && n("sleep") > 300 && n("fail") > 40);
        assert!(jobs
            .iter()
            .any(|j| j.kind == "sleep" && j.max_attempts == 1));
        let up = jobs.iter().find(|j| j.kind == "uppercase").unwrap();
        assert!(matches!(&up.expect, Expect::Done(r) if r.contains("GRÜSSE")));
    }
}
