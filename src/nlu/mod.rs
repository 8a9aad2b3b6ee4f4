//! Understanding: chat text to a typed [`Action`](crate::domain::Action).

pub mod amend;
pub mod chatter;
pub mod config;
pub mod eval;
mod index;
mod lexicon;
pub mod llm;
pub mod markup;
mod rules;
mod tokens;

pub use llm::{NluPath, Understander, Understanding};
pub use rules::{CueNote, Explanation, Parsed, RulesParser};
