//! Subcommands of the `paver` binary.

mod audit;
mod bench;
mod bench_hooks;
mod chat;
mod check_config;
mod discord;
mod docs;
mod nags;
mod nlu;
mod parse;
mod report;
mod scorecard;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use paver::catalog::Catalog;
use paver::config::{self, Config, LogFormat, NluMode};

#[derive(Parser, Debug)]
#[command(
    name = "paver",
    version,
    about = "Chat-ops for the platform: words in chat become typed, confirmed platform actions."
)]
pub struct Args {
    /// Config file (default: $PAVER_CONFIG, else config/paver.toml when present).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse requests: JSON Lines `{"id", "text"}` on stdin, one action per line on stdout.
    Parse {
        /// Backstage catalog YAML (multi-document); overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
        /// Understanding to use.
        #[arg(long, value_enum)]
        nlu: Option<NluMode>,
        /// Explain how the rules parser reads TEXT (the cues found and
        /// what each weighed, the readings' scores, the confidence and what
        /// decided) instead of reading JSON Lines from stdin.
        #[arg(long, value_name = "TEXT")]
        explain: Option<String>,
    },
    /// Understanding tools.
    Nlu {
        #[command(subcommand)]
        command: NluCommand,
    },
    /// Validate the configuration and say what is wrong, with line context.
    CheckConfig {
        /// Backstage catalog YAML to check instead of the configured catalog.file.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
    },
    /// Chat with Paver in the terminal (or a pipe) as a catalog user.
    Chat {
        /// The catalog user you speak as (default: the first in the catalog).
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        /// Backstage catalog YAML; overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Serve the chat platforms' HTTP endpoints (and Socket Mode / gateway connections).
    Serve {
        /// Backstage catalog YAML; overrides the configured catalog (read
        /// once at start, where catalog.file is reloaded every catalog.refresh_secs).
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
    },
    /// Scorecards now: every service's, one service's or one team's.
    Scorecard {
        #[arg(long, value_name = "SERVICE", conflicts_with = "team")]
        service: Option<String>,
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: scorecard::Format,
        /// Backstage catalog YAML; overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
    },
    /// The platform report: self-service, questions and DORA metrics.
    Report {
        /// From when: a duration back from now (`30d`, `2w`), a date or an
        /// RFC 3339 time.
        #[arg(long, value_name = "DURATION|DATE", default_value = "30d")]
        since: String,
        /// Up to when (not included); default: now.
        #[arg(long, value_name = "DURATION|DATE")]
        until: Option<String>,
        /// One team's services only (a catalog group).
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        #[arg(long, value_enum, default_value = "md")]
        format: report::Format,
        /// Backstage catalog YAML; overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
    },
    /// Scorecard nags: the weekly digests.
    Nags {
        #[command(subcommand)]
        command: nags::NagsCommand,
    },
    /// Office hours: search the docs, score retrieval on a question set.
    Docs {
        #[command(subcommand)]
        command: docs::DocsCommand,
    },
    /// Discord tools.
    Discord {
        #[command(subcommand)]
        command: discord::DiscordCommand,
    },
    /// The audit log: request events and approvals (never pruned).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Load tests against real `paver serve` processes (README: Benchmarks).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Signed Slack events at `paver serve` replicas and a recording fake
    /// Slack: acknowledgement latency, event → card latency and rate,
    /// dropped events, launch time, idle memory.
    Events(bench::EventsBench),
    /// A burst of signed deploy hooks (every catalog service at once) at
    /// `paver serve` replicas: acknowledgement latency, time to the last
    /// notice, messages per 1,000 events.
    Hooks(bench_hooks::HooksBench),
}

#[derive(Subcommand, Debug)]
enum NluCommand {
    /// Score understanding on an example set (JSONL with `expect`).
    Eval {
        file: PathBuf,
        /// Backstage catalog YAML; overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
        /// Understanding to score (default: rules). `auto` and `llm` also
        /// report the LLM-call rate, the tokens and the fallbacks.
        #[arg(long, value_enum)]
        nlu: Option<NluMode>,
        /// Exit non-zero when overall accuracy is below this (0–1).
        #[arg(long, value_name = "FRACTION")]
        min_accuracy: Option<f64>,
        /// Print the report as one JSON object (accuracy, confident wrong
        /// changes, clarify rate, misses, and the LLM's use).
        #[arg(long)]
        json: bool,
    },
    /// Measure rules-parser throughput and latency on one core.
    Bench {
        file: PathBuf,
        /// Backstage catalog YAML; overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
        /// How long to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

/// The log's format from the config `args` name (or the environment), read
/// before anything logs; a config that does not load logs as text (and
/// the command then says why it does not load).
pub fn log_format(args: &Args) -> LogFormat {
    let path = config::resolve_path(args.config.as_deref());
    Config::load(path.as_deref())
        .map(|c| c.log.format)
        .unwrap_or_default()
}

pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    // The search index logs each commit at info: not what `PAVER_LOG=info`
    // asks to see, unless it names tantivy.
    let wanted = std::env::var("PAVER_LOG").unwrap_or_else(|_| "warn".into());
    let wanted = if wanted.contains("tantivy") {
        wanted
    } else {
        format!("{wanted},tantivy=warn")
    };
    let filter = EnvFilter::try_new(&wanted).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // One object a line: the fields of the event and of the spans it
        // is in (the request id of a job's work), flattened.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config_path = config::resolve_path(args.config.as_deref());
    match args.command {
        Command::CheckConfig { catalog } => Ok(check_config::run(
            config_path.as_deref(),
            catalog.as_deref(),
        )),
        Command::Chat { as_user, catalog } => {
            let config = load_config(config_path.as_deref())?;
            chat::run(&config, catalog.as_deref(), as_user)
        }
        Command::Serve { catalog } => {
            let config = load_config(config_path.as_deref())?;
            serve::run(&config, catalog.as_deref())
        }
        Command::Scorecard {
            service,
            team,
            format,
            catalog,
        } => {
            let config = load_config(config_path.as_deref())?;
            scorecard::run(&config, catalog.as_deref(), service, team, format)
        }
        Command::Report {
            since,
            until,
            team,
            format,
            catalog,
        } => {
            let config = load_config(config_path.as_deref())?;
            report::run(
                &config,
                catalog.as_deref(),
                &since,
                until.as_deref(),
                team,
                format,
            )
        }
        Command::Nags { command } => {
            let config = load_config(config_path.as_deref())?;
            nags::run(&config, command)
        }
        Command::Docs { command } => docs::run(|| load_config(config_path.as_deref()), command),
        Command::Discord { command } => {
            let config = load_config(config_path.as_deref())?;
            discord::run(&config, command)
        }
        Command::Audit { command } => {
            let config = load_config(config_path.as_deref())?;
            audit::run(&config, command)
        }
        Command::Bench {
            command: BenchCommand::Events(b),
        } => bench::run(b),
        Command::Bench {
            command: BenchCommand::Hooks(b),
        } => bench_hooks::run(&load_config(config_path.as_deref())?, b),
        Command::Migrate => {
            let config = load_config(config_path.as_deref())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(paver::storage::Db::connect(&config.database.url))
                .with_context(|| {
                    format!(
                        "migrating {}",
                        paver::util::redact_url(&config.database.url)
                    )
                })?;
            println!(
                "database {} is up to date",
                paver::util::redact_url(&config.database.url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Parse {
            catalog,
            nlu,
            explain,
        } => {
            let config = load_config(config_path.as_deref())?;
            let catalog = load_catalog(&config, catalog.as_deref())?;
            match explain {
                Some(text) => parse::explain(&catalog, &text),
                None => parse::run(&config, &catalog, nlu.unwrap_or(config.nlu.mode)),
            }
        }
        Command::Nlu { command } => {
            let config = load_config(config_path.as_deref())?;
            match command {
                NluCommand::Eval {
                    file,
                    catalog,
                    nlu: mode,
                    min_accuracy,
                    json,
                } => {
                    let catalog = load_catalog(&config, catalog.as_deref())?;
                    nlu::eval(
                        &config,
                        &catalog,
                        &file,
                        mode.unwrap_or(NluMode::Rules),
                        min_accuracy,
                        json,
                    )
                }
                NluCommand::Bench {
                    file,
                    catalog,
                    seconds,
                } => {
                    let catalog = load_catalog(&config, catalog.as_deref())?;
                    nlu::bench(&catalog, &file, seconds)
                }
            }
        }
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

/// The configured database, migrated; the error names it without its
/// password.
async fn open_db(config: &Config) -> anyhow::Result<paver::storage::Db> {
    paver::storage::Db::connect(&config.database.url)
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                paver::util::redact_url(&config.database.url)
            )
        })
}

fn load_catalog(config: &Config, explicit: Option<&Path>) -> anyhow::Result<Catalog> {
    let Some(source) = paver::app::catalog_source(config, explicit) else {
        tracing::warn!("no catalog configured (catalog.file, catalog.backstage_url or --catalog): every service will be unknown");
        return Ok(Catalog::default());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(source.load())
        .with_context(|| format!("loading the catalog from {}", source.describe()))
}
