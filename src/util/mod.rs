//! Small helpers with no knowledge of Paver's domain: any module may use
//! them, they use none of Paver's modules (the leased scheduler takes its
//! lease table as a trait the storage implements).

pub mod backoff;
pub mod cron;
pub mod memory;
pub mod metrics;
pub mod origin;
pub mod readiness;
pub mod redact;
pub mod scheduler;
pub mod tasks;
pub mod template;
pub mod text;

pub use backoff::Backoff;

/// Wall-clock Unix milliseconds: what the database stores as times, and
/// what leases are compared by across processes (and hosts).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
pub use redact::{redact_text, redact_url, url_has_password};
