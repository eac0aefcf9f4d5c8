//! RPC metrics in the Prometheus text format (`/metrics`): a counter by method and code, and a
//! latency histogram by method. Recorded once per RPC in the protocol-neutral service, so every
//! protocol is counted the same way.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Requests by (method, code), and latency by method.
#[derive(Default)]
struct State(
    BTreeMap<(&'static str, &'static str), u64>,
    BTreeMap<&'static str, Histogram>,
);

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<State>,
}

impl Metrics {
    pub fn observe(&self, method: &'static str, code: &'static str, elapsed: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g.0.entry((method, code)).or_default() += 1;
        let h = g.1.entry(method).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn render(&self) -> String {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP flytesecret_rpc_requests_total RPCs handled, by method and status code.\n",
        );
        out.push_str("# TYPE flytesecret_rpc_requests_total counter\n");
        for ((method, code), n) in &g.0 {
            let _ = writeln!(
                out,
                "flytesecret_rpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP flytesecret_rpc_duration_seconds RPC latency, by method.\n");
        out.push_str("# TYPE flytesecret_rpc_duration_seconds histogram\n");
        for (method, h) in &g.1 {
            for (le, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "flytesecret_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "flytesecret_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "flytesecret_rpc_duration_seconds_sum{{method=\"{method}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "flytesecret_rpc_duration_seconds_count{{method=\"{method}\"}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe("GetSecret", "ok", Duration::from_millis(2));
        m.observe("GetSecret", "not_found", Duration::from_millis(20));
        let text = m.render();
        assert!(
            text.contains("flytesecret_rpc_requests_total{method=\"GetSecret\",code=\"ok\"} 1")
        );
        assert!(text.contains(
            "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("flytesecret_rpc_duration_seconds_count{method=\"GetSecret\"} 2"));
    }
}
