//! Server metrics in the Prometheus text format (version 0.0.4): requests by endpoint and
//! status, queue depth, batch rows, running requests, denoising-step latency (a
//! histogram), generated tokens and tokens per second over the last 10 seconds.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the step-latency histogram's buckets.
const STEP_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// The window over which tokens per second is measured.
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub queue_depth: AtomicUsize,
    pub batch_rows: AtomicUsize,
    pub running_requests: AtomicUsize,
    pub cancelled: AtomicU64,
    /// KV caches: bytes the rows hold now, bytes reserved for the running requests, the
    /// budget, and requests waiting for room in it.
    pub kv_cache_bytes: AtomicUsize,
    pub kv_cache_reserved_bytes: AtomicUsize,
    pub kv_cache_budget_bytes: AtomicUsize,
    pub kv_cache_waiting: AtomicUsize,
    steps: Mutex<Histogram>,
    tokens_total: AtomicU64,
    recent_tokens: Mutex<VecDeque<(Instant, usize)>>,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; STEP_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Locks a metrics mutex even if a panicking thread poisoned it (the data stays usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn record_request(&self, endpoint: &str, status: u16) {
        *lock(&self.requests).entry((endpoint.to_owned(), status)).or_default() += 1;
    }

    /// One denoising step over the batch took `seconds`.
    pub fn record_step(&self, seconds: f64) {
        let mut h = lock(&self.steps);
        for (count, &bound) in h.counts.iter_mut().zip(&STEP_BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// A request finished with `tokens` generated tokens.
    pub fn record_tokens(&self, tokens: usize) {
        self.tokens_total.fetch_add(tokens as u64, Ordering::Relaxed);
        let now = Instant::now();
        let mut recent = lock(&self.recent_tokens);
        recent.push_back((now, tokens));
        while recent.front().is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW) {
            recent.pop_front();
        }
    }

    fn tokens_per_second(&self) -> f64 {
        let now = Instant::now();
        let recent = lock(&self.recent_tokens);
        let tokens: usize = recent.iter().filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW).map(|(_, n)| n).sum();
        tokens as f64 / RATE_WINDOW.as_secs_f64()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut w = |name: &str, kind: &str, help: &str, samples: &str| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{samples}");
        };
        let mut lines = String::new();
        for ((endpoint, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(lines, "dlm_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}");
        }
        w("dlm_requests_total", "counter", "HTTP requests answered, by endpoint and status.", &lines);
        let gauge = |name: &str, v: usize| format!("{name} {v}\n");
        w(
            "dlm_queue_depth",
            "gauge",
            "Requests waiting to join the batch.",
            &gauge("dlm_queue_depth", self.queue_depth.load(Ordering::Relaxed)),
        );
        w(
            "dlm_batch_rows",
            "gauge",
            "Rows in the denoising batch.",
            &gauge("dlm_batch_rows", self.batch_rows.load(Ordering::Relaxed)),
        );
        w(
            "dlm_running_requests",
            "gauge",
            "Requests whose rows are in the batch.",
            &gauge("dlm_running_requests", self.running_requests.load(Ordering::Relaxed)),
        );
        w(
            "dlm_cancelled_requests_total",
            "counter",
            "Requests dropped because their client went away.",
            &format!("dlm_cancelled_requests_total {}\n", self.cancelled.load(Ordering::Relaxed)),
        );
        for (name, help, v) in [
            ("dlm_kv_cache_bytes", "Bytes the KV caches of the batch's rows hold.", &self.kv_cache_bytes),
            (
                "dlm_kv_cache_reserved_bytes",
                "Bytes of KV cache reserved for the running requests (each cached row's whole cache).",
                &self.kv_cache_reserved_bytes,
            ),
            ("dlm_kv_cache_budget_bytes", "The KV cache budget (--kv-cache-budget-mb).", &self.kv_cache_budget_bytes),
            ("dlm_kv_cache_waiting_requests", "Requests waiting for room in the KV cache budget.", &self.kv_cache_waiting),
        ] {
            w(name, "gauge", help, &gauge(name, v.load(Ordering::Relaxed)));
        }
        let h = lock(&self.steps);
        let mut hist = String::new();
        for (count, bound) in h.counts.iter().zip(STEP_BUCKETS) {
            let _ = writeln!(hist, "dlm_step_seconds_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = write!(
            hist,
            "dlm_step_seconds_bucket{{le=\"+Inf\"}} {c}\ndlm_step_seconds_sum {s}\ndlm_step_seconds_count {c}\n",
            c = h.count,
            s = h.sum
        );
        drop(h);
        w("dlm_step_seconds", "histogram", "Latency of one denoising step over the whole batch.", &hist);
        w(
            "dlm_generated_tokens_total",
            "counter",
            "Generated (completion) tokens.",
            &format!("dlm_generated_tokens_total {}\n", self.tokens_total.load(Ordering::Relaxed)),
        );
        w(
            "dlm_tokens_per_second",
            "gauge",
            "Generated tokens per second over the last 10 seconds.",
            &format!("dlm_tokens_per_second {}\n", self.tokens_per_second()),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record_request("/v1/completions", 200);
        m.record_request("/v1/completions", 200);
        m.record_request("/v1/completions", 429);
        m.record_step(0.003); // buckets 0.005 and up
        m.record_step(0.2); // buckets 0.25 and up
        m.record_tokens(20);
        let text = m.render();
        assert!(text.contains("dlm_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("dlm_requests_total{endpoint=\"/v1/completions\",status=\"429\"} 1\n"));
        assert!(text.contains("dlm_step_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("dlm_step_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("dlm_step_seconds_bucket{le=\"0.25\"} 2\n"));
        assert!(text.contains("dlm_step_seconds_count 2\n"));
        assert!(text.contains("dlm_generated_tokens_total 20\n"));
        assert!(text.contains("dlm_tokens_per_second 2\n"));
        for family in [
            "dlm_queue_depth",
            "dlm_batch_rows",
            "dlm_running_requests",
            "dlm_cancelled_requests_total",
            "dlm_kv_cache_bytes",
            "dlm_kv_cache_reserved_bytes",
            "dlm_kv_cache_budget_bytes",
            "dlm_kv_cache_waiting_requests",
        ] {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
    }
}
