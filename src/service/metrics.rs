//! RPC metrics in the Prometheus text format (`/metrics`): a counter by method and code, and a
//! latency histogram by method. Recorded once per RPC in the protocol-neutral service, so every
//! protocol is counted the same way. [`Outcome`] records on drop, so RPCs cut short (client
//! resets, deadlines) are counted as `canceled` / `deadline_exceeded` rather than lost.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// UpdateSecret writes that met a 409 Conflict and were re-read and retried.
    update_conflict_retries: std::sync::atomic::AtomicU64,
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

    /// Counts one Update retried after a 409 Conflict from a concurrent writer.
    pub fn update_conflict_retried(&self) {
        self.update_conflict_retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn update_conflict_retries(&self) -> u64 {
        self.update_conflict_retries
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn render(&self) -> String {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP flytesecret_update_conflict_retries_total UpdateSecret writes retried after a 409 Conflict.\n",
        );
        out.push_str("# TYPE flytesecret_update_conflict_retries_total counter\n");
        let _ = writeln!(
            out,
            "flytesecret_update_conflict_retries_total {}",
            self.update_conflict_retries()
        );
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

/// Records one RPC exactly once: with its code when it finishes, or, when its future is dropped
/// first, as `deadline_exceeded` (the request deadline has passed) or `canceled` (the client went
/// away). The code also goes on the RPC's span, as for a finished RPC.
pub struct Outcome<'a> {
    metrics: &'a Metrics,
    method: &'static str,
    span: tracing::Span,
    start: Instant,
    recorded: bool,
}

impl<'a> Outcome<'a> {
    pub fn new(metrics: &'a Metrics, method: &'static str, span: tracing::Span) -> Self {
        Outcome {
            metrics,
            method,
            span,
            start: Instant::now(),
            recorded: false,
        }
    }

    /// Records the RPC's code (`"ok"` or a Connect code name).
    pub fn finish(&mut self, code: &'static str) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        if code != "ok" {
            self.span.record("rpc.connect_rpc.error_code", code);
        }
        self.metrics
            .observe(self.method, code, self.start.elapsed());
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            let code = if super::deadline::expired() {
                "deadline_exceeded"
            } else {
                "canceled"
            };
            self.finish(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn dropped_rpcs_count_as_canceled_or_deadline_exceeded() {
        let m = Metrics::default();
        let slow = || async {
            let _o = Outcome::new(&m, "GetSecret", tracing::Span::none());
            tokio::time::sleep(Duration::from_secs(10)).await;
        };
        // Cut short by the request deadline.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let timed =
            tokio::time::timeout_at(deadline, super::super::deadline::scope(deadline, slow()));
        assert!(timed.await.is_err());
        // Dropped before its deadline: the client went away.
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let dropped = tokio::time::timeout(
            Duration::from_millis(5),
            super::super::deadline::scope(far, slow()),
        );
        assert!(dropped.await.is_err());
        // Finished normally: recorded once, not again on drop.
        {
            let mut o = Outcome::new(&m, "GetSecret", tracing::Span::none());
            o.finish("ok");
        }
        let text = m.render();
        for code in ["deadline_exceeded", "canceled", "ok"] {
            assert!(
                text.contains(&format!(
                    "flytesecret_rpc_requests_total{{method=\"GetSecret\",code=\"{code}\"}} 1"
                )),
                "{code}: {text}"
            );
        }
        assert!(text.contains("flytesecret_rpc_duration_seconds_count{method=\"GetSecret\"} 3"));
    }

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
