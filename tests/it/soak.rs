//! Memory must not grow with the work done (issue 23): a short soak of the bench's own
//! scenario — an API, two workers and `smsq dev`, each its own process at the shipped log
//! level, nobody scraping `/metrics`, codes at a steady rate with provider faults and
//! delivery reports, every code verified — and each process's resident memory over the last
//! third of the run.
//!
//! The rate, 100 codes/s to the API and as many to `smsq dev`, is one a debug build keeps
//! up with while the rest of the suite runs beside it. At 300/s a starved `smsq dev` fell
//! behind, and its backlog grew by megabytes in CI. The bound, 2 MB over the last 20 s
//! (~2,000 codes per process), catches growth of about 1 KB per code. The causes found so far
//! are smaller, and each is guarded byte for byte where it lives: the worker's unscraped
//! histogram samples (~30 B per send) by `tests/metrics_upkeep.rs`, and the fake inside
//! `smsq dev` keeping every message (~400 B) by
//! `provider::the_fake_remembers_only_its_last_messages`. `bench/soak` measures the half hour.

use crate::common::{smsq_command, temp_dir};

const SECS: f64 = 60.0;

#[test]
fn no_process_grows_with_the_codes_it_handles_once_warm() {
    let json = temp_dir("soak").join("soak.json");
    let out = smsq_command(None)
        .args([
            "bench",
            "--only",
            "soak",
            "--soak-secs",
            "60",
            "--soak-rate",
            "100",
        ])
        .arg("--json")
        .arg(&json)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = raw["rows"].as_array().unwrap();
    let value = |prefix: &str| {
        rows.iter()
            .find(|r| r["figure"].as_str().unwrap_or("").starts_with(prefix))
            .and_then(|r| r["value"].as_f64())
            .unwrap_or_else(|| panic!("no row {prefix:?}:\n{stdout}"))
    };
    let verified = value("codes verified");
    assert!(verified >= 99.0, "{verified} % verified:\n{stdout}");
    for name in ["api", "worker 1", "worker 2", "smsq dev"] {
        let per_10_min = value(&format!("{name} RSS slope"));
        let window_mb = per_10_min * (SECS / 3.0) / 600.0;
        assert!(
            window_mb <= 2.0,
            "{name} grew {window_mb:.2} MB over the last {:.0} s:\n{stdout}",
            SECS / 3.0
        );
    }
}
