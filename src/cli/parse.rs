//! `paver parse`: the typed action contract on stdin/stdout.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Map, Value};

use paver::catalog::Catalog;
use paver::config::{Config, NluMode};
use paver::nlu::{RulesParser, Understander, Understanding};

pub fn run(config: &Config, catalog: &Catalog, mode: NluMode) -> anyhow::Result<ExitCode> {
    let understander = Understander::from_config(&config.llm, mode)?;
    if let Some(u) = &understander {
        tracing::info!(routing = ?u.routing(), "understanding with the LLM: {}", u.describe());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let parser = RulesParser::new(catalog);
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match read_line(&line, n + 1) {
            Ok((id, text)) => {
                let u = match &understander {
                    Some(u) => rt.block_on(u.understand(&parser, catalog, &text)),
                    None => Understanding::by_rules(&parser, &text),
                };
                tracing::debug!(
                    path = u.path.as_str(),
                    latency_ms = u.latency.as_millis() as u64,
                    llm_calls = u.llm_calls,
                    "line {}",
                    n + 1
                );
                contract(id, &u.action)
            }
            Err(e) => e,
        };
        serde_json::to_writer(&mut out, &answer)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `paver parse --explain TEXT`: how the rules parser reads one message.
pub fn explain(catalog: &Catalog, text: &str) -> anyhow::Result<ExitCode> {
    let parser = RulesParser::new(catalog);
    print!("{}", parser.explain(text));
    Ok(ExitCode::SUCCESS)
}

/// `{"id": ..., "action": ..., <fields>}`.
fn contract(id: Value, action: &paver::domain::Action) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), id);
    if let Value::Object(fields) = serde_json::to_value(action).expect("actions serialize") {
        out.extend(fields);
    }
    Value::Object(out)
}

/// One input line: its id and text, or the error object to print (with
/// its id when one could be read); the run goes on either way.
fn read_line(line: &str, number: usize) -> Result<(Value, String), Value> {
    let input: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return Err(error(
                Value::Null,
                format!("line {number}: invalid JSON: {e}"),
            ))
        }
    };
    let id = input.get("id").cloned().unwrap_or(Value::Null);
    let Some(obj) = input.as_object() else {
        return Err(error(
            id,
            format!("line {number}: expected an object with \"id\" and \"text\""),
        ));
    };
    if !obj.contains_key("id") {
        return Err(error(id, format!("line {number}: missing \"id\"")));
    }
    match obj.get("text") {
        Some(Value::String(t)) => Ok((id, t.clone())),
        Some(_) => Err(error(
            id,
            format!("line {number}: \"text\" must be a string"),
        )),
        None => Err(error(id, format!("line {number}: missing \"text\""))),
    }
}

fn error(id: Value, message: String) -> Value {
    serde_json::json!({"id": id, "error": message})
}
