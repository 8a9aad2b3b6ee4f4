//! The request lifecycle: proposal, confirmation, approval, execution, audit.

pub mod engine;
pub mod executor;
pub mod state;

pub use engine::{Engine, EngineError, EngineSettings};
pub use executor::{Executor, ExecutorConfig, ExecutorSettings};
pub use state::{RequestState, Transition};
