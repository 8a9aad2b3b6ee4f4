//! `paver audit export`: the audit log (every request's transitions and
//! every approval decision) as JSON lines, oldest first. Retention never
//! prunes it; this is how it leaves the database for a SIEM or an archive.
//! Secrets never leave with it: free text (a driver's error, a reason) is
//! redacted, and the request's chat ids and raw action are not written.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use clap::Subcommand;
use serde_json::{json, Map, Value};

use paver::config::Config;
use paver::domain::{wording, Action};
use paver::storage::audit::{AuditEntry, AuditWhat};
use paver::util::redact_text;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the audit log (request events and approvals) as JSON lines,
    /// oldest first.
    Export {
        /// From when: a duration back from now (`30m`, `24h`, `7d`, `2w`),
        /// a date (`2026-01-31`, midnight UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DURATION|DATE")]
        since: String,
        /// Up to when (not included), the same forms; default: now.
        #[arg(long, value_name = "DURATION|DATE")]
        until: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Jsonl,
}

pub fn run(config: &Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Export {
        since,
        until,
        format: Format::Jsonl,
    } = command;
    let now = Utc::now();
    let since = when(&since, now).context("--since")?;
    let until = match until {
        Some(u) => when(&u, now).context("--until")?,
        // Everything written up to now, this millisecond included.
        None => now + chrono::Duration::milliseconds(1),
    };
    if until <= since {
        bail!("--until must come after --since");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let entries = rt.block_on(async {
        let db = super::open_db(config).await?;
        db.audit()
            .entries(since.timestamp_millis(), until.timestamp_millis())
            .await
            .context("reading the audit log")
    })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for e in &entries {
        writeln!(out, "{}", line(e))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `7d` back from `now`, or a date, or an RFC 3339 time.
pub(super) fn when(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let s = s.trim();
    if let Some(unit) = s.chars().last().filter(char::is_ascii_alphabetic) {
        if let Ok(n) = s[..s.len() - 1].parse::<i64>() {
            let secs = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => bail!("`{s}`: a duration's unit is s, m, h, d or w"),
            };
            let back = n
                .checked_mul(secs)
                .filter(|b| *b >= 0)
                .and_then(chrono::Duration::try_seconds)
                .with_context(|| format!("`{s}` is not a duration Paver can go back"))?;
            return Ok(now - back);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists")));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    bail!(
        "`{s}` is neither a duration (30m, 24h, 7d, 2w), a date (2026-01-31) nor an RFC 3339 time"
    )
}

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// One entry as a JSON object: what happened to which request, who did
/// it, when, and the state it left the request in.
fn line(e: &AuditEntry) -> Value {
    let r = &e.request;
    let summary = serde_json::from_str::<Action>(&r.action_json)
        .map(|a| wording::summary(&a))
        .unwrap_or_else(|_| r.action_kind.clone());
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("at", json!(rfc3339(e.at)));
    match &e.what {
        AuditWhat::Event { .. } => put("type", json!("event")),
        AuditWhat::Approval { .. } => put("type", json!("approval")),
    }
    put("request_id", json!(r.id));
    put("action", json!(r.action_kind));
    put("summary", json!(summary));
    put("service", json!(r.service));
    put("environment", json!(r.environment));
    put("requester", json!(r.requester));
    match &e.what {
        AuditWhat::Event {
            actor,
            chat,
            transition,
            from_state,
            to_state,
            detail,
        } => {
            put("who", json!(actor));
            put("chat", json!(chat));
            put("transition", json!(transition));
            put("from", json!(from_state));
            put("state", json!(to_state));
            put("detail", json!(redact_text(detail)));
        }
        AuditWhat::Approval {
            approver,
            decision,
            action_hash,
        } => {
            put("who", json!(approver));
            put("decision", json!(decision));
            put("action_hash", json!(action_hash));
        }
    }
    put("request_state", json!(r.state));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_durations_dates_and_times() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
        assert_eq!(
            when("7d", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 3, 12, 0, 0).unwrap()
        );
        assert_eq!(
            when("90m", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 10, 10, 30, 0).unwrap()
        );
        assert_eq!(
            when("2026-01-31", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 31, 0, 0, 0).unwrap()
        );
        assert_eq!(
            when("2026-01-31T10:00:00+01:00", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 31, 9, 0, 0).unwrap()
        );
        for bad in ["", "7", "7y", "-3d", "yesterday", "2026-13-01"] {
            assert!(when(bad, now).is_err(), "{bad}");
        }
    }
}
