//! Configuration: defaults, environment overrides, and exit code 2 naming the bad key.

use std::collections::HashMap;
use std::path::Path;

use smsq::config::{RawConfig, Settings};

use crate::common::{smsq_command, temp_dir};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn shipped_worker_toml_holds_exactly_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("worker.toml");
    let shipped = RawConfig::load(Some(&path), &HashMap::new()).unwrap();
    let defaults = RawConfig::default();
    assert_eq!(
        toml::to_string(&shipped).unwrap(),
        toml::to_string(&defaults).unwrap()
    );
    let s = Settings::load(Some(&path), &HashMap::new()).unwrap();
    assert_eq!(s.code.length, 6);
    assert_eq!(s.code.ttl.as_secs(), 300);
    assert_eq!(s.worker.concurrency.get(), 64);
    assert_eq!(s.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(s.provider.base_url, "https://app.cloopen.com:8883");
}

#[test]
fn environment_overrides_win_over_the_file() {
    let dir = temp_dir("config");
    let path = dir.join("worker.toml");
    std::fs::write(
        &path,
        "[worker]\nconcurrency = 8\n[code]\ntemplate_id = \"7\"\n",
    )
    .unwrap();
    let s = Settings::load(
        Some(&path),
        &env(&[
            ("SMSQ_WORKER__CONCURRENCY", "3"),
            ("SMSQ_CODE__TEMPLATE_ID", "42"),
            ("SMSQ_CAPTCHA__REQUIRED", "true"),
            ("SMSQ_REDIS__URL", "redis+unix:///tmp/x.sock"),
        ]),
    )
    .unwrap();
    assert_eq!(s.worker.concurrency.get(), 3);
    assert_eq!(s.code.template_id.as_str(), "42");
    assert!(s.captcha.required);
    assert_eq!(s.redis.url, "redis+unix:///tmp/x.sock");
    let cluster = Settings::load(
        None,
        &env(&[
            (
                "SMSQ_REDIS__URL",
                "redis://10.0.0.1:7000, redis://10.0.0.2:7000",
            ),
            ("SMSQ_REDIS__CLUSTER", "true"),
            ("SMSQ_REDIS__SHARDS", "6"),
        ]),
    )
    .unwrap();
    assert_eq!(
        cluster.redis.seeds().collect::<Vec<_>>(),
        ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
    );
    assert_eq!(cluster.redis.shards.count(), 6);
    // The file still counts where the environment is silent.
    let s = Settings::load(Some(&path), &HashMap::new()).unwrap();
    assert_eq!(s.worker.concurrency.get(), 8);
}

#[test]
fn bad_values_and_unknown_keys_are_named() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("SMSQ_WORKER__CONCURRENCY", "abc")], "worker.concurrency"),
        (&[("SMSQ_WORKER__CONCURRENCY", "0")], "worker.concurrency"),
        (&[("SMSQ_CODE__LENGTH", "3")], "code.length"),
        (&[("SMSQ_CODE__TEMPLATE_ID", "abc")], "code.template_id"),
        (&[("SMSQ_API__LISTEN", "nowhere")], "api.listen"),
        (&[("SMSQ_WORKER__COLOR", "blue")], "SMSQ_WORKER__COLOR"),
        (&[("SMSQ_NOPE__X", "1")], "SMSQ_NOPE__X"),
        (
            &[("SMSQ_PROVIDER__BASE_URL", "ftp://x")],
            "provider.base_url",
        ),
        (&[("SMSQ_RETRY__MAX_MS", "10")], "retry.max_ms"),
        (&[("SMSQ_REDIS__SHARDS", "0")], "redis.shards"),
        (&[("SMSQ_REDIS__SHARDS", "257")], "redis.shards"),
        (
            &[("SMSQ_REDIS__URL", "redis://a:7000,redis://b:7000")],
            "redis.url",
        ),
        (
            &[
                ("SMSQ_REDIS__URL", "redis+unix:///tmp/x.sock"),
                ("SMSQ_REDIS__CLUSTER", "true"),
            ],
            "redis.url",
        ),
    ];
    for (vars, key) in cases {
        let err = Settings::load(None, &env(vars)).unwrap_err();
        assert!(err.to_string().contains(key), "{vars:?}: {err}");
    }
    let dir = temp_dir("config");
    let path = dir.join("worker.toml");
    std::fs::write(&path, "[worker]\nconcurency = 8\n").unwrap();
    let err = Settings::load(Some(&path), &HashMap::new()).unwrap_err();
    assert_eq!(err.key, "worker.concurency");
    std::fs::write(&path, "[wroker]\nconcurrency = 8\n").unwrap();
    let err = Settings::load(Some(&path), &HashMap::new()).unwrap_err();
    assert_eq!(err.key, "wroker");
    std::fs::write(&path, "[worker]\nconcurrency = \"many\"\n").unwrap();
    let err = Settings::load(Some(&path), &HashMap::new()).unwrap_err();
    assert_eq!(err.key, "worker.concurrency");
}

#[test]
fn smsq_config_exits_2_naming_the_key() {
    let out = smsq_command(None)
        .arg("config")
        .env("SMSQ_WORKER__CONCURRENCY", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("worker.concurrency"), "{stderr}");

    let dir = temp_dir("config");
    let path = dir.join("worker.toml");
    std::fs::write(&path, "[api]\nlisten = \"127.0.0.1:1\"\nport = 3\n").unwrap();
    let out = smsq_command(Some(&path)).arg("config").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.port"));

    let out = smsq_command(Some(&dir.join("missing.toml")))
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an explicit config file must exist"
    );
}

#[test]
fn smsq_config_prints_the_effective_configuration_with_secrets_masked() {
    let out = smsq_command(None)
        .arg("config")
        .env("SMSQ_CODE__LENGTH", "8")
        .env("RONGLIAN_AUTH_TOKEN", "supersecrettoken0123456789abcdef")
        .env("RONGLIAN_ACCOUNT_SID", "aaf98f89488d0aad0148a8e0d8d40a07")
        .env("SMSQ_SECRET", "another-secret-value-123")
        .env("SMSQ_API_TOKENS", "tok-one-0123456789,tok-two-0123456789")
        .env(
            "SMSQ_REDIS__URL",
            "redis://app:hunter2-redis@127.0.0.1:6379/0",
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("length = 8"), "{stdout}");
    assert!(
        stdout.contains("redis://app:***@127.0.0.1:6379/0"),
        "{stdout}"
    );
    for secret in [
        "hunter2-redis",
        "supersecrettoken",
        "another-secret-value",
        "tok-one",
        "aaf98f89488d0aad0148a8e0d8d40a07",
    ] {
        assert!(!stdout.contains(secret), "{secret} leaked: {stdout}");
    }
    assert!(stdout.contains("RONGLIAN_AUTH_TOKEN  = set (hidden)"));
    assert!(stdout.contains("2 token(s)"));
}

#[test]
fn unknown_subcommands_are_usage_errors_and_an_unreachable_redis_is_down() {
    let out = smsq_command(None).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = smsq_command(None)
        .arg("status")
        .env("SMSQ_REDIS__URL", "redis://127.0.0.1:1")
        .env("SMSQ_REDIS__TIMEOUT_MS", "300")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("down (redis unreachable"), "{stdout}");
}

#[test]
fn worker_without_credentials_exits_2_naming_the_variable() {
    let out = smsq_command(None).arg("worker").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RONGLIAN_ACCOUNT_SID"));
}

/// Secrets can come from files (`<NAME>_FILE`, as Docker and Kubernetes mount them); both
/// forms at once refuse to start, naming the variable.
#[test]
fn secrets_are_read_from_the_files_their_file_variables_name() {
    let dir = temp_dir("secret-files");
    std::fs::write(dir.join("secret"), "file-secret-0123456789\n").unwrap();
    std::fs::write(dir.join("token"), "file-auth-token-0123456789").unwrap();
    let out = smsq_command(None)
        .arg("config")
        .env("SMSQ_SECRET_FILE", dir.join("secret"))
        .env("RONGLIAN_AUTH_TOKEN_FILE", dir.join("token"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("SMSQ_SECRET          = set (hidden)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RONGLIAN_AUTH_TOKEN  = set (hidden)"),
        "{stdout}"
    );
    assert!(!stdout.contains("file-secret") && !stdout.contains("file-auth-token"));
    let out = smsq_command(None)
        .arg("config")
        .env("SMSQ_SECRET_FILE", dir.join("secret"))
        .env("SMSQ_SECRET", "direct-secret-0123456789")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SMSQ_SECRET_FILE"), "{stderr}");
    assert!(!stderr.contains("direct-secret"), "{stderr}");
}
