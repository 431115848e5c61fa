//! A private `redis-server` child, for `smsq dev` and the test harness.
//!
//! The child gets `PR_SET_PDEATHSIG`, so it dies with us even if we are killed with SIGKILL.
//! Linux ties that signal to the *thread* that forked, so the fork happens on a keeper thread
//! that lives as long as the process.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LocalRedisError {
    #[error(
        "redis-server is not installed. Install it with:\n    sudo apt-get update && sudo apt-get install -y redis-server\n(Debian/Ubuntu; the package is also called redis on other systems)"
    )]
    NotInstalled,
    #[error("cannot start redis-server: {0}")]
    Spawn(#[source] io::Error),
    #[error("redis-server did not become ready within {0:?} (log: {1})")]
    NotReady(Duration, PathBuf),
}

/// Where the private server listens.
#[derive(Debug, Clone)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(u16),
}

pub struct LocalRedis {
    child: Option<Child>,
    listen: Listen,
    dir: PathBuf,
    /// More `redis-server` arguments (cluster mode).
    extra: Vec<String>,
}

impl LocalRedis {
    /// Starts `redis-server` with its files (and its socket, for `Listen::Unix`) in `dir`,
    /// without persistence, and waits until it answers PING.
    pub fn start(dir: &Path, listen: Listen) -> Result<Self, LocalRedisError> {
        Self::start_with(dir, listen, Vec::new())
    }

    /// [`LocalRedis::start`] with more server arguments.
    pub fn start_with(
        dir: &Path,
        listen: Listen,
        extra: Vec<String>,
    ) -> Result<Self, LocalRedisError> {
        let mut server = Self {
            child: None,
            listen,
            dir: dir.to_owned(),
            extra,
        };
        server.spawn()?;
        Ok(server)
    }

    /// A free loopback port, for `Listen::Tcp`.
    pub fn free_port() -> io::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }

    pub fn url(&self) -> String {
        match &self.listen {
            Listen::Unix(path) => format!("redis+unix://{}", path.display()),
            Listen::Tcp(port) => format!("redis://127.0.0.1:{port}"),
        }
    }

    /// The server's process id while it runs (the bench reads its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (SIGKILL: as abrupt as a crash). Data is not persisted.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again at the same address (after [`LocalRedis::stop`]).
    pub fn restart(&mut self) -> Result<(), LocalRedisError> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), LocalRedisError> {
        let log = self.dir.join("redis.log");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.listen {
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(path);
                cmd.args(["--port", "0", "--unixsocketperm", "700", "--unixsocket"])
                    .arg(path);
            }
            Listen::Tcp(port) => {
                cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
            }
        }
        self.child = Some(spawn_kept(cmd)?);
        self.wait_ready(Duration::from_secs(10), &log)
    }

    fn wait_ready(&mut self, within: Duration, log: &Path) -> Result<(), LocalRedisError> {
        let deadline = Instant::now() + within;
        let client = redis::Client::open(self.url())
            .map_err(|e| LocalRedisError::Spawn(io::Error::other(e)))?;
        while Instant::now() < deadline {
            if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return Ok(());
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                break; // exited: the log says why
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(LocalRedisError::NotReady(within, log.to_owned()))
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cmd` from a thread that never exits, with SIGKILL as its parent-death signal.
pub fn spawn_kept(mut cmd: Command) -> Result<Child, LocalRedisError> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("child-keeper".into())
        .spawn(move || {
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        })
        .map_err(LocalRedisError::Spawn)?;
    match rx.recv() {
        Ok(Ok(child)) => Ok(child),
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => Err(LocalRedisError::NotInstalled),
        Ok(Err(e)) => Err(LocalRedisError::Spawn(e)),
        Err(_) => Err(LocalRedisError::Spawn(io::Error::other(
            "keeper thread died",
        ))),
    }
}
