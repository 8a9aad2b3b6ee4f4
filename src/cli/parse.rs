//! `paver parse`: the typed action contract on stdin/stdout.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Map, Value};

use paver::catalog::Catalog;
use paver::config::{Config, NluMode};
use paver::nlu::RulesParser;

pub fn run(config: &Config, catalog: &Catalog, mode: NluMode) -> anyhow::Result<ExitCode> {
    match mode {
        NluMode::Llm if !config.llm.is_configured() => {
            bail!("--nlu llm: no LLM is configured (set llm.base_url and llm.model, or PAVER_LLM__BASE_URL and PAVER_LLM__MODEL)")
        }
        NluMode::Llm => {
            bail!("--nlu llm: understanding with an LLM is not available in this build yet; use --nlu rules")
        }
        NluMode::Auto if config.llm.is_configured() => {
            tracing::warn!(
                "an LLM is configured but this build understands with the rules parser only"
            )
        }
        _ => {}
    }
    let parser = RulesParser::new(catalog);
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = answer_line(&parser, &line, n + 1);
        serde_json::to_writer(&mut out, &answer)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One input line to one output object; a bad line gets an error object
/// (with its id when one could be read) and the run goes on.
fn answer_line(parser: &RulesParser, line: &str, number: usize) -> Value {
    let input: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return error(Value::Null, format!("line {number}: invalid JSON: {e}")),
    };
    let id = input.get("id").cloned().unwrap_or(Value::Null);
    let Some(obj) = input.as_object() else {
        return error(
            id,
            format!("line {number}: expected an object with \"id\" and \"text\""),
        );
    };
    if !obj.contains_key("id") {
        return error(id, format!("line {number}: missing \"id\""));
    }
    let text = match obj.get("text") {
        Some(Value::String(t)) => t,
        Some(_) => return error(id, format!("line {number}: \"text\" must be a string")),
        None => return error(id, format!("line {number}: missing \"text\"")),
    };
    let action = parser.parse(text).action;
    let mut out = Map::new();
    out.insert("id".into(), id);
    if let Value::Object(fields) = serde_json::to_value(action).expect("actions serialize") {
        out.extend(fields);
    }
    Value::Object(out)
}

fn error(id: Value, message: String) -> Value {
    serde_json::json!({"id": id, "error": message})
}
