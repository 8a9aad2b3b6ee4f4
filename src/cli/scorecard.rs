//! `paver scorecard`: every service's (or one service's, or one team's)
//! scorecard now, as text or JSON.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use paver::config::Config;
use paver::domain::scorecard::{ServiceScore, Verdict};
use paver::domain::TeamName;
use paver::scorecards::Scorecards;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

pub fn run(
    config: &Config,
    catalog: Option<&std::path::Path>,
    service: Option<String>,
    team: Option<String>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let catalog = paver::app::load_catalog(config, catalog).await?;
        let db = super::open_db(config).await?;
        // Scoring says nothing in chat: a sender with no platform to send to.
        let dispatcher = paver::chat::dispatcher::Dispatcher::new(
            db.clone(),
            Default::default(),
            paver::chat::dispatcher::Pace::none(),
        );
        let send = paver::chat::send::Sender::new(
            db.clone(),
            dispatcher,
            catalog.clone(),
            config.golden_path(),
        );
        let scorecards = Scorecards::new(db, catalog, config.scorecards.clone(), send);
        let scores = match (service, team) {
            (Some(s), _) => vec![scorecards.service(&s).await?],
            (None, Some(t)) => {
                let team = TeamName::parse(t.as_str())
                    .with_context(|| format!("{t} is not a team name"))?;
                scorecards.team(&team).await?
            }
            (None, None) => scorecards.all().await?,
        };
        match format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&as_json(&scores))?),
            Format::Text => print!("{}", as_text(&scores)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn as_json(scores: &[ServiceScore]) -> serde_json::Value {
    let services: Vec<_> = scores
        .iter()
        .map(|s| {
            let checks: Vec<_> = s
                .checks
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "weight": c.weight.as_str(),
                        "passed": c.passes(),
                        "applies": c.verdict != Verdict::NotApplicable,
                        "reason": c.reason(),
                        "fix_url": c.fix_url,
                    })
                })
                .collect();
            json!({
                "service": s.service.as_str(),
                "owner": s.owner.as_ref().map(|o| o.as_str()),
                "level": s.level.map(|l| l.as_str()),
                "checks": checks,
            })
        })
        .collect();
    json!({ "services": services })
}

fn as_text(scores: &[ServiceScore]) -> String {
    let mut out = String::new();
    for s in scores {
        let level = s
            .level
            .map(|l| l.title().to_owned())
            .unwrap_or_else(|| "below Bronze".into());
        let owner = s.owner.as_ref().map(|o| o.as_str()).unwrap_or("no owner");
        out.push_str(&format!("{} ({owner}): {level}\n", s.service));
        for c in s.failing() {
            out.push_str(&format!(
                "  ✗ {} ({}): {}\n",
                c.name,
                c.weight,
                c.reason().unwrap_or("failing")
            ));
        }
    }
    out
}
