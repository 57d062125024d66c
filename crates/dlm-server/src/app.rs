//! What every handler shares: the model's description, the scheduler's handle, the
//! metrics, and response ids. (Its own module so that the routes and the SSE stream both
//! use it without depending on each other.)

use crate::metrics::Metrics;
use crate::request::ModelInfo;
use crate::scheduler::Scheduler;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything the handlers share.
pub struct App {
    pub info: ModelInfo,
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    next_id: AtomicU64,
    /// When the server started (`/v1/models`' `created`).
    pub started: u64,
}

impl App {
    pub fn new(info: ModelInfo, scheduler: Scheduler, metrics: Arc<Metrics>) -> App {
        App { info, scheduler, metrics, next_id: AtomicU64::new(0), started: unix_now() }
    }

    /// A fresh response id, `PREFIX-N`.
    pub fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
