//! Test support shared by every pfc crate's integration tests.
//!
//! Tests talk to a **real** `redis-server`, started here on a free loopback port with no
//! persistence (or, for crash tests, with an append-only file fsynced on every write), and
//! killed when the [`RedisServer`] handle drops. Nothing is mocked.
//!
//! # Layout
//! - [`RedisServer`]: spawn, stop, restart, pause and resume a private redis-server.
//! - [`RedisCluster`]: a real Redis Cluster (masters + replicas) on loopback.
//! - [`RedisOptions`]: persistence (AOF `appendfsync always`) for restarts that keep data.
//! - [`signal`]: send a signal (`STOP`, `CONT`, `KILL`, ...) to a process by id.
//! - [`free_port`]: a free TCP port on 127.0.0.1; [`stable_port`]: one that stays free while
//!   its server restarts.
//! - [`wait_until`]: poll a condition with a deadline instead of sleeping.

mod cluster;
pub use cluster::RedisCluster;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A free TCP port on 127.0.0.1 **outside the kernel's ephemeral range**, for a server that is
/// restarted on the same port: while it is down, no outgoing connection can take the port as
/// its source port (or connect to itself on it), as can happen to a [`free_port`].
pub fn stable_port() -> u16 {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    // below the range if there is room there, else above it
    let (from, to) = if lo > 11_000 {
        (10_000, lo)
    } else {
        (hi + 1, 65_536)
    };
    let span = to.saturating_sub(from).max(1);
    let mut x = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    for _ in 0..1000 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let port = (from + x % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    free_port()
}

/// Sends signal `name` (`STOP`, `CONT`, `KILL`, `TERM`, ...) to process `pid` with `kill(1)`.
/// Returns false when the process does not exist (or `kill` failed).
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How a [`RedisServer`] keeps its data.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// Append-only file with `appendfsync always`: every acknowledged write is on disk, so a
    /// [`RedisServer::restart`] (even after SIGKILL) comes back with all the data.
    pub aof: bool,
    /// The port; a [`free_port`] when unset (use a [`stable_port`] for restarts under load).
    pub port: Option<u16>,
}

/// A private `redis-server` on a free port, killed on drop.
///
/// `PFC_TEST_REDIS_URL` is deliberately not used to share one server: every test gets its own
/// so tests can run in parallel, stop the server, and never see each other's keys.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
    options: RedisOptions,
    paused: bool,
}

impl RedisServer {
    /// Starts a redis-server and waits until it answers PING.
    ///
    /// Panics with installation advice when `redis-server` is not on PATH.
    pub fn start() -> Self {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a redis-server with `options` and waits until it answers PING.
    pub fn start_with(options: RedisOptions) -> Self {
        let port = options.port.unwrap_or_else(free_port);
        let dir = std::env::temp_dir().join(format!("pfc-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create redis dir");
        let mut s = Self {
            port,
            child: None,
            dir,
            options,
            paused: false,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let persistence: &[&str] = if self.options.aof {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(persistence)
            .args(["--dir", self.dir.to_str().expect("utf-8 temp dir")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: install it (apt-get install redis-server) or run scripts/test.sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not start within 10 s",
            self.port
        );
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's working directory (where the append-only file lives).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Kills the server (SIGKILL) and waits for it to exit: an outage; the data is lost
    /// unless the server was started with [`RedisOptions::aof`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    /// Starts the server again on the same port (after [`RedisServer::stop`], or kills it
    /// first), and waits until it answers PING (with AOF: until the data is loaded).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered, like a
    /// stalled host or a network partition. Undo with [`RedisServer::resume`].
    pub fn pause(&mut self) {
        if let Some(pid) = self.pid() {
            assert!(signal(pid, "STOP"), "SIGSTOP redis-server {pid}");
            self.paused = true;
        }
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&mut self) {
        if let Some(pid) = self.pid() {
            assert!(signal(pid, "CONT"), "SIGCONT redis-server {pid}");
        }
        self.paused = false;
    }

    /// True between [`RedisServer::pause`] and [`RedisServer::resume`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Polls `check` every 10 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness really starts, stops and restarts a redis-server.
    #[test]
    fn redis_server_lifecycle() {
        let mut r = RedisServer::start();
        assert!(ping(r.port()));
        r.stop();
        assert!(!ping(r.port()));
        r.restart();
        assert!(ping(r.port()));
    }

    /// With AOF a write survives SIGKILL and restart; a paused server answers nothing
    /// until resumed.
    #[test]
    fn aof_restart_keeps_data_and_pause_freezes() {
        let mut r = RedisServer::start_with(RedisOptions {
            aof: true,
            port: Some(stable_port()),
        });
        assert!(r.port() < 32768 || r.port() > 60999);
        assert_eq!(command(r.port(), "SET k v"), "+OK\r\n");
        r.restart();
        assert_eq!(command(r.port(), "GET k"), "$1\r\nv\r\n");
        r.pause();
        assert!(r.is_paused());
        assert!(!ping(r.port()), "a paused server does not answer");
        r.resume();
        assert!(ping(r.port()));
    }

    fn command(port: u16, cmd: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}
