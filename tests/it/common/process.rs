//! Child `smsq` processes: the environment they need and a clean command line.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use smsq::config::Settings;

use super::{APP_ID, SECRET, SID, TOKEN};

/// Environment for a child `smsq` process talking to the same Redis and prefix.
pub fn child_env(settings: &Settings, provider_base: &str) -> Vec<(String, String)> {
    vec![
        ("SMSQ_REDIS__URL".into(), settings.redis.url.clone()),
        ("SMSQ_REDIS__PREFIX".into(), settings.redis.prefix.clone()),
        (
            "SMSQ_REDIS__CLUSTER".into(),
            settings.redis.cluster.to_string(),
        ),
        (
            "SMSQ_REDIS__SHARDS".into(),
            settings.redis.shards.count().to_string(),
        ),
        ("SMSQ_PROVIDER__BASE_URL".into(), provider_base.to_owned()),
        ("SMSQ_WORKER__BLOCK_MS".into(), "100".into()),
        ("RONGLIAN_ACCOUNT_SID".into(), SID.into()),
        ("RONGLIAN_AUTH_TOKEN".into(), TOKEN.into()),
        ("RONGLIAN_APP_ID".into(), APP_ID.into()),
        ("SMSQ_SECRET".into(), SECRET.into()),
    ]
}

/// Runs `cmd`, asserts that it exited 0 (showing its stderr if not), and gives its stdout.
pub fn stdout_of_success(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `smsq` command with a clean environment (no SMSQ_* or RONGLIAN_* from the caller) and
/// `--config` pointing at the given file or a file that does not exist.
pub fn smsq_command(config: Option<&Path>) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_smsq"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SMSQ_") || k.starts_with("RONGLIAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info");
    if let Some(path) = config {
        cmd.arg("--config").arg(path);
    }
    cmd
}

pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we own.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill failed");
}

/// Waits for the child to exit, killing it if it takes longer than `within`.
pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `smsq worker --name NAME --concurrency 16` with the test's environment plus `extra`.
pub fn spawn_worker_process(env: &[(String, String)], name: &str, extra: &[(&str, &str)]) -> Child {
    let mut cmd = smsq_command(None);
    cmd.args(["worker", "--name", name, "--concurrency", "16"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().expect("spawn smsq worker")
}

/// A child that is killed if the test ends early (a failed assertion), so no worker outlives it.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child that printed one JSON line: it succeeded, and that line, parsed.
pub fn json_stdout(ran: &std::process::Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The first fenced `lang` block of the README that contains `needle`, as it is written.
pub fn readme_snippet(lang: &str, needle: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    readme
        .split(&format!("```{lang}\n"))
        .skip(1)
        .filter_map(|b| b.split_once("\n```").map(|(code, _)| code.to_owned()))
        .find(|code| code.contains(needle))
        .unwrap_or_else(|| panic!("the README's {lang} block with {needle:?}"))
}

/// Runs `script` with the test tools' Python (`./test.sh` installs the official SDKs there)
/// and asserts it succeeded and printed `ok`, showing its output if not.
pub async fn python_says_ok(script: &str, args: &[&str]) {
    let out = tokio::process::Command::new(crate::openapi::python_tool("python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .await
        .expect("the venv's python runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
