//! The bench's child processes (`smsq api`, `smsq worker`, `smsq fake-provider`) and what
//! `/proc` says about them: CPU time and peak memory.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary the soak's processes under test run: this one, unless `smsq bench --exe`
/// named another build (an A/B of two builds in one harness; the fake stays this one's).
static EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Makes the children run `exe` instead of this binary; only the first call counts.
pub fn set_exe(exe: std::path::PathBuf) {
    let _ = EXE.set(exe);
}

fn exe() -> io::Result<std::path::PathBuf> {
    match EXE.get() {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe(),
    }
}

/// A child `smsq` process, killed when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn smsq(args: &[&str], env: &HashMap<String, String>) -> io::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        for (k, _) in std::env::vars() {
            if k.starts_with("SMSQ_") || k.starts_with("RONGLIAN_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .envs(env)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(Self {
            child: cmd.spawn()?,
        })
    }

    /// As its users start it: the shipped log level (no `RUST_LOG`), stdout and stderr
    /// appended to `log`, as under a process manager that keeps the output in a file.
    pub fn smsq_logged(
        args: &[&str],
        env: &HashMap<String, String>,
        log: &std::path::Path,
    ) -> io::Result<Self> {
        let exe = exe()?;
        let mut cmd = Command::new(exe);
        for (k, _) in std::env::vars() {
            if k.starts_with("SMSQ_") || k.starts_with("RONGLIAN_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        cmd.args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        Ok(Self {
            child: cmd.spawn()?,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// User + system CPU time a process has used so far.
pub fn cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / hz)
}

/// Peak resident memory (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:") * 1024
}

/// Resident memory now (VmRSS), in bytes; 0 once the process is gone.
pub fn rss(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:") * 1024
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
}

/// Lets this process and its children hold the sockets a 2,000-send concurrency needs.
pub fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
