//! Paver: a chat-ops bot for platform engineering.
//!
//! The library holds everything the `paver` binary does, so integration tests
//! and benchmarks drive the same code the binary runs.

pub mod answers;
pub mod app;
pub mod catalog;
pub mod chat;
pub mod config;
pub mod discord;
pub mod docs;
pub mod domain;
pub mod drivers;
pub mod engine;
pub mod hooks;
pub mod nlu;
pub mod notify;
pub mod policy;
pub mod report;
pub mod requests;
pub mod scorecards;
pub mod server;
pub mod slack;
pub mod storage;
pub mod util;
