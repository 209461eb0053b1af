//! A real Redis Cluster on loopback: `redis-server --cluster-enabled yes` processes joined
//! with `redis-cli --cluster create`, masters and replicas, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A private Redis Cluster (e.g. 3 masters with 1 replica each), killed on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

struct Node {
    port: u16,
    child: Option<Child>,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each (`cluster-node-timeout` 2 s)
    /// and waits until every node reports `cluster_state:ok`.
    ///
    /// Panics with installation advice when `redis-server`/`redis-cli` are missing.
    pub fn start(masters: usize, replicas: usize) -> Self {
        // one cluster start at a time per process, and ports held until all are chosen, so
        // two clusters never share a port
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        let n = masters * (1 + replicas);
        let mut attempt = 0;
        let c = loop {
            attempt += 1;
            match Self::spawn_nodes(n) {
                Ok(c) => break c,
                // a port was taken between choosing and binding (by another test's server,
                // or an outgoing connection): new ports, a few times
                Err(e) if attempt < 4 => eprintln!("redis cluster nodes: {e}; retrying"),
                Err(e) => panic!("redis cluster nodes did not start: {e}"),
            }
        };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &c.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let mut child = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli not found: install redis-tools (apt-get install redis-server)");
        // `--cluster create` waits forever for nodes that never join: bounded here
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("redis-cli") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli --cluster create did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut out);
        }
        assert!(status.success(), "redis-cli --cluster create failed: {out}");
        for node in &c.nodes {
            let port = node.port;
            wait_for(Duration::from_secs(20), || {
                cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        // replicas attach and sync asynchronously: wait until every master's replicas are
        // online (a WAIT before that counts none of them)
        for m in c.masters() {
            wait_for(Duration::from_secs(30), || {
                cli(m, &["INFO", "replication"])
                    .matches("state=online")
                    .count()
                    >= replicas
            });
        }
        c
    }

    /// Starts `n` cluster-mode nodes on fresh ports and checks each is ours and alive (a port
    /// taken by someone else between choosing and binding would otherwise answer `PING` for
    /// a server that exited, and `--cluster create` would wait for it forever).
    fn spawn_nodes(n: usize) -> Result<Self, String> {
        let mut ports: Vec<u16> = Vec::with_capacity(n);
        while ports.len() < n {
            let p = cluster_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "pfc-redis-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create cluster dir: {e}"))?;
        let mut c = Self {
            nodes: ports
                .into_iter()
                .map(|port| Node { port, child: None })
                .collect(),
            dir,
        };
        for i in 0..n {
            c.spawn(i);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 0..n {
            let port = c.nodes[i].port;
            loop {
                let exited = c.nodes[i]
                    .child
                    .as_mut()
                    .is_none_or(|ch| ch.try_wait().ok().flatten().is_some());
                if exited {
                    return Err(format!("the node on port {port} exited (port taken?)"));
                }
                if cli(port, &["CLUSTER", "MYID"]).trim().len() == 40 {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("the node on port {port} did not answer"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(c)
    }

    fn spawn(&mut self, i: usize) {
        let port = self.nodes[i].port;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .args(["--dir", self.dir.to_str().expect("utf-8 temp dir")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: install it (apt-get install redis-server)");
        self.nodes[i].child = Some(child);
    }

    /// Seed URLs of every node, comma-separated (what `--redis-url` takes in cluster mode).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Ports of the nodes that are masters now.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .filter(|p| cli(*p, &["ROLE"]).starts_with("master"))
            .collect()
    }

    /// Port of the master serving the slot of `key` (`None` while no master does, e.g. in
    /// the middle of a failover).
    pub fn master_of(&self, key: &str) -> Option<u16> {
        let any = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node")
            .port;
        let slot: u16 = cli(any, &["CLUSTER", "KEYSLOT", key]).trim().parse().ok()?;
        self.masters().into_iter().find(|m| owns_slot(*m, slot))
    }

    /// Kills one node (SIGKILL), like a crashed host.
    pub fn kill(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Starts a killed node again with its cluster config: it rejoins (a former master comes
    /// back as a replica of the node that replaced it), like a crashed pod restarted.
    pub fn restart(&mut self, port: u16) {
        if let Some(i) = self.nodes.iter().position(|n| n.port == port) {
            self.kill(port);
            self.spawn(i);
            wait_for(Duration::from_secs(10), || crate::ping(port));
        }
    }

    /// Runs `redis-cli` against node `port` and returns its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// Moves the slot of `key` from its master to master `to`, the way `redis-cli --cluster
    /// reshard` does it, step by step: `IMPORTING` on the target, `MIGRATING` on the source,
    /// `MIGRATE` of the slot's keys in batches of `batch` (clients meanwhile get `ASK` and
    /// `TRYAGAIN` redirections), then `SETSLOT … NODE` on every master. Returns the number of
    /// keys moved.
    pub fn migrate_slot(&self, key: &str, to: u16, batch: usize) -> usize {
        let from = self.master_of(key).expect("the slot has a master");
        assert_ne!(from, to, "the slot is already on {to}");
        let slot = cli(from, &["CLUSTER", "KEYSLOT", key]).trim().to_owned();
        let from_id = cli(from, &["CLUSTER", "MYID"]).trim().to_owned();
        let to_id = cli(to, &["CLUSTER", "MYID"]).trim().to_owned();
        cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
        cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
        let mut moved = 0;
        loop {
            let keys = cli(
                from,
                &["CLUSTER", "GETKEYSINSLOT", &slot, &batch.to_string()],
            );
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(&keys);
            let out = cli(from, &args);
            assert!(
                out.trim() == "OK" || out.trim() == "NOKEY",
                "MIGRATE: {out}"
            );
            moved += keys.len();
        }
        for m in self.masters() {
            cli(m, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        }
        moved
    }

    /// Deletes every key on every master (between tests sharing one cluster).
    pub fn flush(&self) {
        for m in self.masters() {
            cli(m, &["FLUSHALL"]);
        }
    }
}

/// True when master `port` serves `slot` (from its `CLUSTER NODES` line marked `myself`).
fn owns_slot(port: u16, slot: u16) -> bool {
    let nodes = cli(port, &["CLUSTER", "NODES"]);
    let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
        return false;
    };
    me.split_whitespace().skip(8).any(|r| {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&slot),
            _ => false,
        }
    })
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A port for a cluster node such that it and its cluster bus port (+10000) are free and both
/// lie below the kernel's ephemeral range, so no outgoing connection can take either while a
/// node is down for a restart.
fn cluster_port() -> u16 {
    let lo = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u32, lo.saturating_sub(10_000).max(10_001));
    let mut x = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    for _ in 0..1000 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let port = from + (x >> 8) % (to - from);
        let free = |p: u32| std::net::TcpListener::bind(("127.0.0.1", p as u16)).is_ok();
        if free(port) && free(port + 10_000) {
            return port as u16;
        }
    }
    free_port()
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis cluster not ready within {timeout:?}");
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
