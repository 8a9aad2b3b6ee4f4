//! The request lifecycle: proposal, confirmation, approval, execution, audit.

pub mod engine;
pub mod state;

pub use engine::{Engine, EngineError, EngineSettings};
pub use state::{RequestState, Transition};
