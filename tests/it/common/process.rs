//! Child `smsq` processes: the environment they need and a clean command line.

use std::path::Path;

use smsq::config::Settings;

use super::{APP_ID, SECRET, SID, TOKEN};

/// Environment for a child `smsq` process talking to the same Redis and prefix.
pub fn child_env(settings: &Settings, provider_base: &str) -> Vec<(String, String)> {
    vec![
        ("SMSQ_REDIS__URL".into(), settings.redis.url.clone()),
        ("SMSQ_REDIS__PREFIX".into(), settings.redis.prefix.clone()),
        ("SMSQ_PROVIDER__BASE_URL".into(), provider_base.to_owned()),
        ("SMSQ_WORKER__BLOCK_MS".into(), "100".into()),
        ("RONGLIAN_ACCOUNT_SID".into(), SID.into()),
        ("RONGLIAN_AUTH_TOKEN".into(), TOKEN.into()),
        ("RONGLIAN_APP_ID".into(), APP_ID.into()),
        ("SMSQ_SECRET".into(), SECRET.into()),
    ]
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
