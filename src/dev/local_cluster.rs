//! A private Redis Cluster on loopback ports: `redis-server` nodes in cluster mode joined with
//! `redis-cli --cluster create`, for the cluster tests, the bench and `smsq dev --cluster`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::local_redis::{Listen, LocalRedis, LocalRedisError};

/// How long a master may be silent before its replica takes over. Short, so a failover in a
/// test takes a second or two, not the default 15 s.
pub const NODE_TIMEOUT_MS: u64 = 1000;

pub struct LocalCluster {
    /// Masters first (as `--cluster create` assigns them), then replicas.
    nodes: Vec<LocalRedis>,
    ports: Vec<u16>,
}

impl LocalCluster {
    /// Starts `masters` nodes with `replicas` each under `dir` and joins them; returns once
    /// every node says `cluster_state:ok`.
    pub fn start(dir: &Path, masters: usize, replicas: usize) -> Result<Self, LocalRedisError> {
        let count = masters * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        let mut ports = Vec::with_capacity(count);
        for i in 0..count {
            let node_dir = dir.join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir).map_err(LocalRedisError::Spawn)?;
            let port = LocalRedis::free_port().map_err(LocalRedisError::Spawn)?;
            // The bus port is set explicitly: the default (port + 10000) may be taken or
            // past 65535 for a port the system picked.
            let bus = LocalRedis::free_port().map_err(LocalRedisError::Spawn)?;
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &NODE_TIMEOUT_MS.to_string(),
                "--cluster-port",
                &bus.to_string(),
            ]
            .map(str::to_owned)
            .to_vec();
            nodes.push(LocalRedis::start_with(&node_dir, Listen::Tcp(port), extra)?);
            ports.push(port);
        }
        let cluster = Self { nodes, ports };
        cluster.create(replicas, dir)?;
        cluster.wait_ok(Duration::from_secs(20), dir)?;
        Ok(cluster)
    }

    fn create(&self, replicas: usize, dir: &Path) -> Result<(), LocalRedisError> {
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(self.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(LocalRedisError::Spawn)?;
        if !output.status.success() {
            let log = dir.join("cluster-create.log");
            let _ = std::fs::write(&log, [output.stdout, output.stderr].concat());
            return Err(LocalRedisError::NotReady(Duration::ZERO, log));
        }
        Ok(())
    }

    fn wait_ok(&self, within: Duration, dir: &Path) -> Result<(), LocalRedisError> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if (0..self.nodes.len()).all(|i| self.state_ok(i)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LocalRedisError::NotReady(within, dir.to_owned()))
    }

    /// Whether node `i` answers and sees the whole cluster serving.
    pub fn state_ok(&self, i: usize) -> bool {
        self.info(i, "CLUSTER", "INFO")
            .is_some_and(|info| info.contains("cluster_state:ok"))
    }

    fn info(&self, i: usize, cmd: &str, arg: &str) -> Option<String> {
        let client = redis::Client::open(self.nodes.get(i)?.url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .ok()?;
        redis::cmd(cmd).arg(arg).query(&mut conn).ok()
    }

    /// Seed nodes for `redis.url` (every node, comma-separated).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(LocalRedis::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The URL of node `i` alone.
    pub fn node_url(&self, i: usize) -> Option<String> {
        self.nodes.get(i).map(LocalRedis::url)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i` is a master now (a replica may have been promoted).
    pub fn is_master(&self, i: usize) -> bool {
        self.info(i, "INFO", "replication")
            .is_some_and(|info| info.contains("role:master"))
    }

    /// The node that holds `key` (a node answers `MOVED` for the keys of other nodes' slots,
    /// and so does a replica).
    pub fn node_holding(&self, key: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            let exists = || -> redis::RedisResult<bool> {
                let client = redis::Client::open(self.nodes[i].url())?;
                let mut conn = client.get_connection_with_timeout(Duration::from_millis(200))?;
                redis::cmd("EXISTS").arg(key).query(&mut conn)
            };
            exists().unwrap_or(false)
        })
    }

    /// Every replica of master `i` has acknowledged all it was sent.
    pub fn replicas_caught_up(&self, i: usize) -> bool {
        let Some(info) = self.info(i, "INFO", "replication") else {
            return false;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let Some(offset) = field("master_repl_offset:") else {
            return false;
        };
        let replicas: Vec<&str> = info.lines().filter(|l| l.starts_with("slave")).collect();
        !replicas.is_empty()
            && replicas
                .iter()
                .all(|r| r.contains(&format!("offset={offset},")))
    }

    /// Empties every master (replicas follow).
    pub fn flush(&self) -> Result<(), redis::RedisError> {
        for (i, node) in self.nodes.iter().enumerate() {
            if self.is_master(i) {
                let mut conn = redis::Client::open(node.url())?.get_connection()?;
                redis::cmd("FLUSHALL").query::<()>(&mut conn)?;
            }
        }
        Ok(())
    }

    /// Kills node `i` (SIGKILL, as abrupt as a crash).
    pub fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i) {
            node.stop();
        }
    }
}
