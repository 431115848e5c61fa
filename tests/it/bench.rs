//! `bench/run --quick` keeps working: the same binary, every scenario, small.

use crate::common::{smsq_command, temp_dir};

#[test]
fn the_quick_bench_prints_every_scenario_and_writes_the_raw_numbers() {
    let json = temp_dir("bench").join("results.json");
    let out = smsq_command(None)
        .args(["bench", "--quick", "--json"])
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
    for scenario in [
        "| provider stand-in |",
        "| enqueue |",
        "| drain, 0 ms provider |",
        "| drain, 100 ms provider |",
        "| end to end |",
        "| limiter |",
        "| recovery |",
        "| memory |",
        "| cluster, 3 masters |",
        "| pumping |",
    ] {
        assert!(stdout.contains(scenario), "{scenario} missing:\n{stdout}");
    }
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = raw["rows"].as_array().unwrap();
    assert!(rows.len() >= 18, "{} rows", rows.len());
    for row in rows {
        let value = row["value"].as_f64().unwrap();
        // A figure held to a target (SMS to a ring, users refused) may rightly be 0.
        let may_be_zero = row["ceiling_is"]
            .as_str()
            .unwrap_or("")
            .starts_with("target");
        assert!(
            value.is_finite() && (value > 0.0 || may_be_zero && value == 0.0),
            "{row}"
        );
    }
}
