//! Small helpers with no knowledge of Paver's domain: any module may use
//! them, they use none of Paver's modules (the leased scheduler takes its
//! lease table as a trait the storage implements).

pub mod backoff;
pub mod metrics;
pub mod readiness;
pub mod redact;
pub mod scheduler;
pub mod tasks;
pub mod template;
pub mod text;

pub use backoff::Backoff;
pub use redact::{redact_text, redact_url, url_has_password};
