//! `paver nags run-once`: the scorecard digests, evaluated now. Dry, they
//! are printed as console text; otherwise each team's digest for the
//! current period is recorded and sent through the outbox, once (a digest
//! the scheduler already sent is not sent again).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use paver::chat::dispatcher::Dispatcher;
use paver::config::Config;
use paver::domain::TeamName;
use paver::engine::Engine;
use paver::scorecards::nags::{Mode, Outcome};

#[derive(Subcommand, Debug)]
pub enum NagsCommand {
    /// Evaluate the digests now and send (or, with --dry-run, print) them.
    RunOnce {
        /// Only this team's digest.
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// Print the digests as console text; record and send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Backstage catalog YAML; overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<std::path::PathBuf>,
    },
}

pub fn run(config: &Config, command: NagsCommand) -> anyhow::Result<ExitCode> {
    let NagsCommand::RunOnce {
        team,
        dry_run,
        catalog,
    } = command;
    let team = team
        .map(TeamName::parse)
        .transpose()
        .context("--team must be a catalog group's name")?;
    let mut config = config.clone();
    // Without `[scorecards.nags]` the scheduler is off, but an operator
    // asking for the digests gets them with the defaults.
    config.scorecards.nags.get_or_insert_with(Default::default);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let catalog = paver::app::load_catalog(&config, catalog.as_deref()).await?;
        let db = super::open_db(&config).await?;
        let sinks = if dry_run {
            Default::default()
        } else {
            paver::server::sinks(&config)?
        };
        let dispatcher = Dispatcher::new(db.clone(), sinks, paver::app::pace(&config));
        let driver = paver::app::driver(&config, &catalog).await?;
        let engine = Engine::new(
            db.clone(),
            catalog,
            config.policy.clone(),
            driver,
            dispatcher.clone(),
            paver::app::engine_settings(&config),
        );
        let mode = if dry_run { Mode::Dry } else { Mode::Now };
        let runs = engine
            .scorecards()
            .run_nags(chrono::Utc::now(), team.as_ref(), mode)
            .await?;
        if runs.is_empty() {
            println!("(no team owns a service in the catalog)");
        }
        for r in &runs {
            let who = r
                .team
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "services without an owner".into());
            match (&r.outcome, &r.preview) {
                (Outcome::Sent, Some(text)) => {
                    let verb = if dry_run { "would send" } else { "sending" };
                    println!("── {who}: {verb}\n{text}\n");
                }
                (Outcome::AlreadySent, _) => println!("── {who}: this period's digest was sent already"),
                (Outcome::AllPassing, _) => println!("── {who}: nothing fails, no digest"),
                (Outcome::NoChannel, _) => {
                    println!("── {who}: no channel to post in (catalog Slack/Discord channel, or scorecards.nags.platform_channels)")
                }
                (other, _) => println!("── {who}: {other:?}"),
            }
        }
        if !dry_run {
            // Send what was queued before exiting; what is left stays in the
            // outbox for `paver serve` to deliver.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::time::Instant::now() < deadline
                && db.outbox().pending_count().await? > 0
            {
                if dispatcher.run_once().await? == 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
