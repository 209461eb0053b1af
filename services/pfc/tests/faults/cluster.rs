//! The split deployment as real processes: a redis-server with AOF (`appendfsync always`),
//! `pfc jobs` servers on fixed ports (a restarted server comes back where clients expect
//! it), and `pfc worker` processes with JSON logs in files (their history). Every process
//! is killed when the [`Cluster`] drops, including on a failed assertion or a panic.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use pfc_testkit::{RedisOptions, RedisServer};

use super::logs;

/// Jobs each worker runs at once.
pub const WORKER_CONCURRENCY: usize = 8;

/// A child process, SIGKILLed and reaped on drop.
struct Process(Child);

impl Process {
    fn spawn(mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("failed to open {}", log.display()))?;
        let err = out.try_clone()?;
        // no OTLP export from the children, whatever the environment says
        for k in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ] {
            cmd.env_remove(k);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .context("failed to spawn pfc")?;
        Ok(Self(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn exited(&mut self) -> bool {
        !matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGKILL also ends a SIGSTOPped process
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `pfc jobs` server.
pub struct JobsServer {
    /// `jobs-N`.
    pub name: String,
    /// Its gRPC address (the same across restarts).
    pub addr: SocketAddr,
    log: PathBuf,
    proc: Option<Process>,
}

/// One worker slot: a `pfc worker` process, replaced by a new one (new id) after a kill.
pub struct Worker {
    /// The current process's worker id.
    pub id: String,
    health: SocketAddr,
    proc: Option<Process>,
    paused: bool,
}

/// The deployment.
pub struct Cluster {
    /// pfc processes first: they die before Redis does.
    pub jobs: Vec<JobsServer>,
    /// Worker slots.
    pub workers: Vec<Worker>,
    /// Every worker log written (one per process).
    pub worker_logs: Vec<PathBuf>,
    /// Redis, with AOF.
    pub redis: RedisServer,
    dir: PathBuf,
    spawned: usize,
}

fn pfc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pfc"))
}

async fn serving(addr: SocketAddr) -> bool {
    // a SIGSTOPped process accepts connections (the kernel does) but never answers
    matches!(
        tokio::time::timeout(Duration::from_secs(1), crate::common::health(addr)).await,
        Ok(Some(true))
    )
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Cluster {
    /// Starts Redis, `jobs` servers and `workers` workers, and waits until all are ready.
    pub async fn start(dir: &Path, jobs: usize, workers: usize) -> anyhow::Result<Self> {
        // stable ports (outside the ephemeral range) for what restarts on the same port
        let redis = tokio::task::block_in_place(|| {
            RedisServer::start_with(RedisOptions {
                aof: true,
                port: Some(pfc_testkit::stable_port()),
            })
        });
        let mut c = Self {
            jobs: Vec::new(),
            workers: Vec::new(),
            worker_logs: Vec::new(),
            redis,
            dir: dir.to_owned(),
            spawned: 0,
        };
        for i in 0..jobs {
            let port = pfc_testkit::stable_port();
            c.jobs.push(JobsServer {
                name: format!("jobs-{i}"),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log: dir.join(format!("jobs-{i}.log")),
                proc: None,
            });
            c.start_jobs(i).await?;
        }
        for slot in 0..workers {
            c.workers.push(Worker {
                id: String::new(),
                health: SocketAddr::from(([127, 0, 0, 1], 0)),
                proc: None,
                paused: false,
            });
            c.start_worker(slot).await?;
        }
        Ok(c)
    }

    /// `http://` URLs of the jobs servers.
    pub fn jobs_urls(&self) -> Vec<String> {
        self.jobs
            .iter()
            .map(|j| format!("http://{}", j.addr))
            .collect()
    }

    /// Starts `pfc jobs` number `i` (again) and waits until it is SERVING.
    pub async fn start_jobs(&mut self, i: usize) -> anyhow::Result<()> {
        let url = self.redis.url();
        let j = &mut self.jobs[i];
        let mut cmd = pfc();
        cmd.args(["jobs", "--redis-url", &url])
            .args(["--grpc-addr", &j.addr.to_string()])
            .env("PFC_LOG", "info");
        j.proc = Some(Process::spawn(cmd, &j.log)?);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if serving(j.addr).await {
                return Ok(());
            }
            if j.proc.as_mut().is_some_and(Process::exited) {
                bail!("{} exited at start:\n{}", j.name, tail(&j.log));
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{} not SERVING after 20 s:\n{}", j.name, tail(&j.log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9` of jobs server `i`.
    pub fn kill_jobs(&mut self, i: usize) {
        self.jobs[i].proc = None;
    }

    /// Starts a new worker process in `slot` and waits until it logged its id and is SERVING
    /// (three tries: a free port can be taken by someone else before the worker binds it).
    pub async fn start_worker(&mut self, slot: usize) -> anyhow::Result<()> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_start_worker(slot).await {
                Err(e) if tries < 3 && e.to_string().contains("exited at start") => {
                    eprintln!("retrying a worker start: {e:#}");
                }
                r => return r,
            }
        }
    }

    async fn try_start_worker(&mut self, slot: usize) -> anyhow::Result<()> {
        // each worker speaks the worker protocol to a jobs server (its own first, slot by
        // slot) and fails over to the others, as behind a Kubernetes Service
        let n = self.jobs.len();
        let url = (0..n)
            .map(|i| format!("http://{}", self.jobs[(slot + i) % n].addr))
            .collect::<Vec<_>>()
            .join(",");
        self.spawned += 1;
        let log = self
            .dir
            .join(format!("worker-{slot}-{:02}.jsonl", self.spawned));
        let health = SocketAddr::from(([127, 0, 0, 1], pfc_testkit::free_port()));
        let mut cmd = pfc();
        cmd.args(["worker", "--jobs-url", &url])
            .args(["--grpc-addr", &health.to_string()])
            .args(["--concurrency", &WORKER_CONCURRENCY.to_string()])
            // on SIGTERM, jobs still running after 1 s are given back (exercises release)
            .args(["--shutdown-timeout", "1s"])
            .env("PFC_LOG_FORMAT", "json")
            .env("PFC_LOG", "info");
        let mut proc = Process::spawn(cmd, &log)?;
        self.worker_logs.push(log.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let id = loop {
            let id = std::fs::read_to_string(&log)
                .ok()
                .and_then(|t| logs::parse(&t).worker);
            if let Some(id) = id {
                if serving(health).await {
                    break id;
                }
            }
            if proc.exited() {
                bail!("worker in slot {slot} exited at start:\n{}", tail(&log));
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "worker in slot {slot} not ready after 20 s:\n{}",
                    tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.workers[slot] = Worker {
            id,
            health,
            proc: Some(proc),
            paused: false,
        };
        Ok(())
    }

    /// `kill -9` of the worker in `slot`; returns its id.
    pub fn kill_worker(&mut self, slot: usize) -> String {
        let w = &mut self.workers[slot];
        w.proc = None;
        w.paused = false;
        w.id.clone()
    }

    /// SIGTERM of the worker in `slot` (a graceful stop); waits up to `timeout` for it to
    /// exit, then kills it. Returns its id and whether it exited in time.
    pub async fn terminate_worker(&mut self, slot: usize, timeout: Duration) -> (String, bool) {
        let w = &mut self.workers[slot];
        let id = w.id.clone();
        let Some(mut proc) = w.proc.take() else {
            return (id, false);
        };
        pfc_testkit::signal(proc.pid(), "TERM");
        let deadline = tokio::time::Instant::now() + timeout;
        while !proc.exited() {
            if tokio::time::Instant::now() > deadline {
                return (id, false); // dropping `proc` kills it
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (id, true)
    }

    /// SIGSTOP of the worker in `slot`.
    pub fn pause_worker(&mut self, slot: usize) -> anyhow::Result<()> {
        let w = &mut self.workers[slot];
        let pid = w.proc.as_ref().context("no worker process")?.pid();
        if !pfc_testkit::signal(pid, "STOP") {
            bail!("SIGSTOP of worker {pid} failed");
        }
        w.paused = true;
        Ok(())
    }

    /// SIGCONT of the worker in `slot`.
    pub fn resume_worker(&mut self, slot: usize) -> anyhow::Result<()> {
        let w = &mut self.workers[slot];
        let pid = w.proc.as_ref().context("no worker process")?.pid();
        if !pfc_testkit::signal(pid, "CONT") {
            bail!("SIGCONT of worker {pid} failed");
        }
        w.paused = false;
        Ok(())
    }

    /// SIGKILL of Redis (its AOF keeps every acknowledged write).
    pub fn kill_redis(&mut self) {
        tokio::task::block_in_place(|| self.redis.stop());
    }

    /// Starts Redis again from its AOF; returns once it answers PING (data loaded).
    pub fn start_redis(&mut self) {
        tokio::task::block_in_place(|| self.redis.restart());
    }

    /// Undoes whatever is still broken: resumes paused processes, restarts dead ones, and
    /// waits until every server and worker is ready.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        if self.redis.is_paused() {
            self.redis.resume();
        }
        if self.redis.pid().is_none() {
            self.start_redis();
        }
        for i in 0..self.jobs.len() {
            let dead = self.jobs[i].proc.as_mut().is_none_or(Process::exited);
            if dead {
                self.start_jobs(i).await?;
            }
        }
        for slot in 0..self.workers.len() {
            if self.workers[slot].paused {
                self.resume_worker(slot)?;
            }
            let dead = self.workers[slot].proc.as_mut().is_none_or(Process::exited);
            if dead {
                self.start_worker(slot).await?;
            }
        }
        let mut ready: Vec<(String, SocketAddr)> =
            self.jobs.iter().map(|j| (j.name.clone(), j.addr)).collect();
        ready.extend(
            self.workers
                .iter()
                .map(|w| (format!("worker {}", w.id), w.health)),
        );
        for (name, addr) in ready {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while !serving(addr).await {
                if tokio::time::Instant::now() > deadline {
                    bail!("{name} not SERVING 15 s after healing");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The pfc processes that exited by themselves (not killed by the suite) since the last
    /// call: crashes. [`Cluster::heal`] restarts them.
    pub fn crashed(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for j in &mut self.jobs {
            if j.proc.as_mut().is_some_and(Process::exited) {
                j.proc = None;
                out.push(format!("{} (log {})", j.name, j.log.display()));
            }
        }
        for (slot, w) in self.workers.iter_mut().enumerate() {
            if w.proc.as_mut().is_some_and(Process::exited) {
                w.proc = None;
                out.push(format!("worker {} in slot {slot}", w.id));
            }
        }
        out
    }
}

/// Creates (empty) the suite's working directory.
pub fn workdir(seed: u64) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pfc-faults-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
