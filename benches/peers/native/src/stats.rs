//! Percentiles of a phase's samples, printed as JSON.

use serde_json::{Value, json};

/// One phase: its samples summarised.
pub fn phase(name: &str, samples: &mut [u64]) -> Value {
    samples.sort_unstable();
    let at = |q: f64| -> u64 {
        if samples.is_empty() {
            return 0;
        }
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i]
    };
    json!({
        "phase": name,
        "samples": samples.len(),
        "min_ns": at(0.0),
        "p50_ns": at(0.5),
        "p90_ns": at(0.9),
        "p99_ns": at(0.99),
    })
}

/// Print a run's report.
pub fn report(bench: &str, payload: usize, phases: Vec<Value>) {
    println!(
        "{}",
        json!({"bench": bench, "payload": payload, "phases": phases})
    );
}
