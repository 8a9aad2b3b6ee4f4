//! `paver report`: the platform report (README: "Platform report") of a
//! window, as Markdown, JSON or CSV on stdout.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::Utc;

use paver::config::Config;
use paver::report::{self, render, Scope};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    /// Markdown, to paste into a doc.
    #[default]
    Md,
    /// The typed report (durations in ms, rates as numerator/denominator).
    Json,
    /// One row per figure and per week.
    Csv,
}

pub fn run(
    config: &Config,
    catalog: Option<&Path>,
    since: &str,
    until: Option<&str>,
    team: Option<String>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let since = super::audit::when(since, now).context("--since")?;
    let until = match until {
        Some(u) => super::audit::when(u, now).context("--until")?,
        None => now,
    };
    if until <= since {
        bail!("--until must come after --since");
    }
    let catalog = super::load_catalog(config, catalog)?;
    if let Some(t) = &team {
        if catalog.group(t).is_none() {
            tracing::warn!(team = %t, "no such group in the catalog: the report will be empty");
        }
    }
    let scope = Scope {
        since: since.timestamp_millis(),
        until: until.timestamp_millis(),
        team,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(async {
        let db = super::open_db(config).await?;
        let built = report::build(&db, &catalog, &scope)
            .await
            .context("building the report")?;
        report::with_cost(built, &db, &catalog, &config.cost)
            .await
            .context("adding what it costs")
    })?;
    let text = match format {
        Format::Md => render::markdown(&report),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Csv => render::csv(&report),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
