//! Memory must not grow with the work done (issue 23): a short soak of the bench's own
//! scenario — an API, two workers and `smsq dev`, each its own process at the shipped log
//! level, nobody scraping `/metrics`, codes at a steady rate with provider faults and
//! delivery reports, every code verified — and each process's resident memory over the last
//! third of the run.
//!
//! The bound, 2 MB over the last 20 s (~6,000 codes per process), leaves room for a debug
//! build's warm-up on a busy CI machine and catches what grows by a few hundred bytes per
//! code: the fake inside `smsq dev` keeping every message grew it 6.7 MB over the window
//! before it was bounded. The worker's old leak, ~30 bytes per send in unscraped histogram
//! samples, is too small for a minute of RSS to show; `tests/metrics_upkeep.rs` guards that
//! cause byte for byte, and `bench/soak` measures the half hour.

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
            "300",
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
