//! RPC metrics in the Prometheus text format (`/metrics`): a counter by method and code, and a
//! latency histogram by method. Recorded once per RPC in the protocol-neutral service, so every
//! protocol is counted the same way. [`Outcome`] records on drop, so RPCs cut short (client
//! resets, deadlines) are counted as `canceled` / `deadline_exceeded` rather than lost.

use super::Code;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The RPCs counted, in the order their series are rendered (by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    CreateSecret,
    DeleteSecret,
    GetSecret,
    ListSecrets,
    UpdateSecret,
}

impl Method {
    const ALL: [Method; 5] = [
        Method::CreateSecret,
        Method::DeleteSecret,
        Method::GetSecret,
        Method::ListSecrets,
        Method::UpdateSecret,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::CreateSecret => "CreateSecret",
            Method::DeleteSecret => "DeleteSecret",
            Method::GetSecret => "GetSecret",
            Method::ListSecrets => "ListSecrets",
            Method::UpdateSecret => "UpdateSecret",
        }
    }
}

/// One slot per gRPC status number (0 is OK); the codes this service uses fit below it.
const CODE_SLOTS: usize = 17;

/// The counters of one method. Buckets are not cumulative here (one increment per RPC, the
/// last slot for longer than the largest bound); rendering adds them up.
struct PerMethod {
    requests: [AtomicU64; CODE_SLOTS],
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// The sum of latencies in seconds, as the bits of an `f64` (a float, like Prometheus's
    /// own sum: it cannot wrap around).
    sum_seconds: AtomicU64,
}

impl Default for PerMethod {
    fn default() -> Self {
        PerMethod {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_seconds: AtomicU64::new(0f64.to_bits()),
        }
    }
}

/// Requests by (method, code), and latency by method: atomic counters, so recording an RPC
/// takes no lock (every request records one, from every runtime worker).
#[derive(Default)]
pub struct Metrics {
    methods: [PerMethod; Method::ALL.len()],
    /// UpdateSecret writes that met a 409 Conflict and were re-read and retried.
    update_conflict_retries: AtomicU64,
}

/// The name a code slot is rendered with.
fn code_name(slot: usize) -> Option<&'static str> {
    if slot == 0 {
        return Some("ok");
    }
    Code::from_grpc(slot as i32).map(Code::connect_name)
}

impl Metrics {
    /// Records one RPC: `None` is success.
    pub fn observe(&self, method: Method, code: Option<Code>, elapsed: Duration) {
        let m = &self.methods[method as usize];
        let slot = code.map_or(0, |c| c.grpc_number() as usize);
        m.requests[slot].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        m.buckets[bucket].fetch_add(1, Relaxed);
        let _ = m.sum_seconds.fetch_update(Relaxed, Relaxed, |sum| {
            Some((f64::from_bits(sum) + secs).to_bits())
        });
    }

    /// Counts one Update retried after a 409 Conflict from a concurrent writer.
    pub fn update_conflict_retried(&self) {
        self.update_conflict_retries.fetch_add(1, Relaxed);
    }

    pub fn update_conflict_retries(&self) -> u64 {
        self.update_conflict_retries.load(Relaxed)
    }

    /// The Prometheus text: only the series that have counted something, by method and then
    /// code name.
    pub fn render(&self) -> String {
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
        for method in Method::ALL {
            let m = &self.methods[method as usize];
            let mut counted: Vec<(&str, u64)> = (0..CODE_SLOTS)
                .filter_map(|slot| Some((code_name(slot)?, m.requests[slot].load(Relaxed))))
                .filter(|(_, n)| *n > 0)
                .collect();
            counted.sort_unstable();
            for (code, n) in counted {
                let _ = writeln!(
                    out,
                    "flytesecret_rpc_requests_total{{method=\"{}\",code=\"{code}\"}} {n}",
                    method.name()
                );
            }
        }
        out.push_str("# HELP flytesecret_rpc_duration_seconds RPC latency, by method.\n");
        out.push_str("# TYPE flytesecret_rpc_duration_seconds histogram\n");
        for method in Method::ALL {
            let m = &self.methods[method as usize];
            let counts: Vec<u64> = m.buckets.iter().map(|b| b.load(Relaxed)).collect();
            let count: u64 = counts.iter().sum();
            if count == 0 {
                continue;
            }
            let name = method.name();
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(&counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "flytesecret_rpc_duration_seconds_bucket{{method=\"{name}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "flytesecret_rpc_duration_seconds_bucket{{method=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "flytesecret_rpc_duration_seconds_sum{{method=\"{name}\"}} {}",
                f64::from_bits(m.sum_seconds.load(Relaxed))
            );
            let _ = writeln!(
                out,
                "flytesecret_rpc_duration_seconds_count{{method=\"{name}\"}} {count}"
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
    method: Method,
    span: tracing::Span,
    start: Instant,
    recorded: bool,
}

impl<'a> Outcome<'a> {
    pub fn new(metrics: &'a Metrics, method: Method, span: tracing::Span) -> Self {
        Outcome {
            metrics,
            method,
            span,
            start: Instant::now(),
            recorded: false,
        }
    }

    /// Records the RPC's code (`None` for success).
    pub fn finish(&mut self, code: Option<Code>) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        if let Some(code) = code {
            self.span
                .record("rpc.connect_rpc.error_code", code.connect_name());
        }
        self.metrics
            .observe(self.method, code, self.start.elapsed());
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            let code = if super::deadline::expired() {
                Code::DeadlineExceeded
            } else {
                Code::Canceled
            };
            self.finish(Some(code));
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
            let _o = Outcome::new(&m, Method::GetSecret, tracing::Span::none());
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
            let mut o = Outcome::new(&m, Method::GetSecret, tracing::Span::none());
            o.finish(None);
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
        m.observe(Method::GetSecret, None, Duration::from_millis(2));
        m.observe(
            Method::GetSecret,
            Some(Code::NotFound),
            Duration::from_millis(20),
        );
        m.observe(
            Method::GetSecret,
            Some(Code::Aborted),
            Duration::from_secs(9),
        );
        m.observe(Method::CreateSecret, None, Duration::from_micros(100));
        let text = m.render();
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        // Only what was counted, by method and then code name; buckets cumulative.
        assert_eq!(
            series,
            [
                "flytesecret_update_conflict_retries_total 0",
                "flytesecret_rpc_requests_total{method=\"CreateSecret\",code=\"ok\"} 1",
                "flytesecret_rpc_requests_total{method=\"GetSecret\",code=\"aborted\"} 1",
                "flytesecret_rpc_requests_total{method=\"GetSecret\",code=\"not_found\"} 1",
                "flytesecret_rpc_requests_total{method=\"GetSecret\",code=\"ok\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.0005\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.001\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.0025\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.005\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.01\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.025\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.05\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.1\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.25\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"0.5\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"1\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"5\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"CreateSecret\",le=\"+Inf\"} 1",
                "flytesecret_rpc_duration_seconds_sum{method=\"CreateSecret\"} 0.0001",
                "flytesecret_rpc_duration_seconds_count{method=\"CreateSecret\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.0005\"} 0",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.001\"} 0",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.0025\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.005\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.01\"} 1",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.025\"} 2",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.05\"} 2",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.1\"} 2",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.25\"} 2",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"0.5\"} 2",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"1\"} 2",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"5\"} 2",
                "flytesecret_rpc_duration_seconds_bucket{method=\"GetSecret\",le=\"+Inf\"} 3",
                "flytesecret_rpc_duration_seconds_sum{method=\"GetSecret\"} 9.022",
                "flytesecret_rpc_duration_seconds_count{method=\"GetSecret\"} 3",
            ]
        );
    }

    /// gRPC's status numbers run from 0 to 16, so every code has a counter slot; each is
    /// rendered under its Connect name, and counted there.
    #[test]
    fn every_code_has_a_slot_named_as_connect_names_it() {
        assert_eq!(code_name(0), Some("ok"));
        for code in Code::ALL {
            let n = code.grpc_number() as usize;
            assert!(n > 0 && n < CODE_SLOTS, "{code:?}");
            assert_eq!(code_name(n), Some(code.connect_name()));
            let m = Metrics::default();
            m.observe(Method::DeleteSecret, Some(code), Duration::ZERO);
            let line = format!(
                "flytesecret_rpc_requests_total{{method=\"DeleteSecret\",code=\"{}\"}} 1",
                code.connect_name()
            );
            assert!(m.render().contains(&line), "{line}");
        }
    }
}
