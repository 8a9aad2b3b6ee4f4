//! Understanding: chat text to a typed [`Action`](crate::domain::Action).

pub mod eval;
mod index;
mod lexicon;
pub mod markup;
mod rules;
mod tokens;

pub use rules::{Parsed, RulesParser};
