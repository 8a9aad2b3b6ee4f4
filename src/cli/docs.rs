//! `paver docs search|answer|eval`: office hours from the terminal — what
//! the index finds for a question, the answer chat would give (written by
//! the LLM when one is configured), and how well retrieval and answers do
//! on a question set. `paver docs gaps` and `paver docs agenda`: what
//! people asked that the docs miss, and the office-hours agenda.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use paver::chat::dispatcher::Dispatcher;
use paver::chat::send::Sender;
use paver::config::Config;
use paver::docs::answer::{self, AnswerLlm, DocsReply, Via};
use paver::docs::{eval, office_hours, Docs, DocsConfig, DocsSource, LiveDocs};

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// The sections that best answer QUERY, with scores.
    Search {
        /// A docs root (mkdocs.yml, docs/); overrides [[docs.sources]]. Repeatable.
        #[arg(long = "docs", value_name = "DIR")]
        docs: Vec<PathBuf>,
        /// An array of {path, heading, url, score}.
        #[arg(long)]
        json: bool,
        /// How many sections.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// The question (several words need no quotes).
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
    },
    /// The answer chat gives to QUESTION: written by the configured LLM
    /// from the sections it cites, or the best sections quoted, or "I don't
    /// know".
    Answer {
        /// A docs root (mkdocs.yml, docs/); overrides [[docs.sources]]. Repeatable.
        #[arg(long = "docs", value_name = "DIR")]
        docs: Vec<PathBuf>,
        /// {known, answer, sources: [{path, heading, url}]}.
        #[arg(long)]
        json: bool,
        /// Quote the sections even when an LLM is configured.
        #[arg(long)]
        no_llm: bool,
        /// The question (several words need no quotes).
        #[arg(required = true, num_args = 1..)]
        question: Vec<String>,
    },
    /// Score retrieval on a question set (JSONL with `expect`); with
    /// `--answers`, score the answers (`answer_contains` too).
    Eval {
        file: PathBuf,
        /// A docs root (mkdocs.yml, docs/); overrides [[docs.sources]]. Repeatable.
        #[arg(long = "docs", value_name = "DIR")]
        docs: Vec<PathBuf>,
        /// Exit non-zero when recall@3 on answerable questions is below this (0–1).
        #[arg(long, value_name = "FRACTION", conflicts_with = "answers")]
        min_recall: Option<f64>,
        /// Score the answers: the share of answerable questions whose answer
        /// holds every `answer_contains` phrase and cites an expected section,
        /// and of unanswerable ones answered "don't know".
        #[arg(long)]
        answers: bool,
        /// With --answers: quote the sections even when an LLM is configured.
        #[arg(long, requires = "answers")]
        no_llm: bool,
    },
    /// The questions the docs miss (not known, or voted not helpful),
    /// most asked first.
    Gaps {
        /// Questions of the last N days.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// An array of {question, count, unanswered, not_helpful, last_asked, nearest}.
        #[arg(long)]
        json: bool,
    },
    /// The office-hours agenda: the tagged questions no agenda listed yet.
    Agenda {
        /// Print it; post and record nothing (the scheduler posts it).
        #[arg(long, required = true)]
        dry_run: bool,
        /// Backstage catalog YAML; overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
    },
}

/// `config` is read only when no `--docs` is given.
pub fn run(
    config: impl FnOnce() -> anyhow::Result<Config>,
    command: DocsCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        DocsCommand::Search {
            docs,
            json,
            k,
            query,
        } => {
            let docs = load(config, &docs)?;
            let query = query.join(" ");
            let near = runtime()?.block_on(docs.near(&query));
            let hits = docs.search_near(&query, near.as_deref(), k);
            if json {
                let out: Vec<_> = hits
                    .iter()
                    .map(|h| json!({"path": h.path, "heading": h.heading, "url": h.url, "score": h.score}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if hits.is_empty() {
                println!("nothing found");
            } else {
                for h in &hits {
                    let flag = if h.answerable {
                        ""
                    } else {
                        "  (weak: don't know)"
                    };
                    // The words a section lacks are why it is weak.
                    let missing = if h.missing.is_empty() {
                        String::new()
                    } else {
                        format!(", lacks {}", h.missing.join(" "))
                    };
                    println!(
                        "{:7.3}  {} › {}{flag}\n         {}  coverage {:.2}{missing}",
                        h.score,
                        h.path,
                        h.heading_path.join(" › "),
                        h.url,
                        h.coverage
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DocsCommand::Answer {
            docs,
            json,
            no_llm,
            question,
        } => {
            let (docs, llm) = load_with_llm(config, &docs, no_llm)?;
            let question = question.join(" ");
            let reply = runtime()?.block_on(answer::answer(&docs, llm.as_ref(), &question));
            if json {
                println!("{}", serde_json::to_string_pretty(&reply_json(&reply))?);
            } else {
                print!("{}", reply_text(&reply));
            }
            Ok(ExitCode::SUCCESS)
        }
        DocsCommand::Eval {
            file,
            docs,
            answers: true,
            no_llm,
            ..
        } => {
            let (docs, llm) = load_with_llm(config, &docs, no_llm)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let cases = eval::parse_answer_cases(&text)
                .with_context(|| format!("parsing {}", file.display()))?;
            match &llm {
                Some(l) => println!("answers by {}", l.describe()),
                None => println!("answers quoted (no LLM)"),
            }
            let started = std::time::Instant::now();
            let r = runtime()?.block_on(eval::run_answers(&docs, llm.as_ref(), &cases));
            println!(
                "answerable {}: right {:.3} ({}) — every expected phrase and an expected section cited; \"don't know\" to {}",
                r.answerable,
                r.right_share(),
                r.right,
                r.answerable_dont_know
            );
            println!(
                "unanswerable {}: \"don't know\" {:.3} ({})",
                r.unanswerable,
                r.dont_know_share(),
                r.dont_know
            );
            println!(
                "written by the model {}, quoted after the model's answer was refused {}, in {:.1}s",
                r.written,
                r.fell_back,
                started.elapsed().as_secs_f64()
            );
            for m in &r.misses {
                println!("miss {} {:?}", m.id, m.question);
                if m.expected.is_empty() {
                    println!("  expected: don't know");
                } else {
                    println!(
                        "  expected: {:?} from {}",
                        m.answer_contains,
                        m.expected
                            .iter()
                            .map(|e| format!("{} › {}", e.path, e.heading))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    );
                }
                let via = match &m.reply.via {
                    Via::Retrieval => "retrieval".to_owned(),
                    Via::Llm { .. } => "llm".to_owned(),
                    Via::Fallback { reason } => format!("quoted: {reason}"),
                };
                println!(
                    "  got ({via}, known {}): {:?}",
                    m.reply.known,
                    paver::chat::docs::brief(&m.reply.answer, 240)
                );
                println!(
                    "  sources: {}",
                    m.reply
                        .sources
                        .iter()
                        .map(|s| format!("{} › {}", s.path, s.heading))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DocsCommand::Eval {
            file,
            docs,
            min_recall,
            ..
        } => {
            let docs = load(config, &docs)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let cases =
                eval::parse(&text).with_context(|| format!("parsing {}", file.display()))?;
            let r = runtime()?.block_on(eval::run_near(&docs, &cases));
            println!(
                "answerable {}: recall@1 {:.3} ({}), recall@3 {:.3} ({}), \"don't know\" to {}",
                r.answerable,
                r.recall_at1(),
                r.at1,
                r.recall_at3(),
                r.at3,
                r.answerable_dont_know
            );
            println!(
                "unanswerable {}: \"don't know\" {:.3} ({})",
                r.unanswerable,
                r.dont_know_share(),
                r.dont_know
            );
            for m in &r.misses {
                let expected = if m.expected.is_empty() {
                    "don't know".to_owned()
                } else {
                    m.expected
                        .iter()
                        .map(|e| format!("{} › {}", e.path, e.heading))
                        .collect::<Vec<_>>()
                        .join(" | ")
                };
                let decided = if m.said_dont_know {
                    "don't know"
                } else {
                    "answered"
                };
                println!("miss {} {:?}", m.id, m.question);
                println!("  expected: {expected}");
                println!("  got ({decided}): {}", m.got.join(" | "));
            }
            match min_recall {
                Some(min) if r.recall_at3() < min => {
                    eprintln!("recall@3 {:.3} is below {min}", r.recall_at3());
                    Ok(ExitCode::FAILURE)
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        DocsCommand::Gaps { days, json } => gaps(&config()?, days, json),
        DocsCommand::Agenda { dry_run, catalog } => agenda(&config()?, dry_run, catalog),
    }
}

/// `{known, answer, sources: [{path, heading, url}]}`.
fn reply_json(reply: &DocsReply) -> serde_json::Value {
    json!({
        "known": reply.known,
        "answer": reply.answer,
        "sources": reply
            .sources
            .iter()
            .map(|s| json!({"path": s.path, "heading": s.heading, "url": s.url}))
            .collect::<Vec<_>>(),
    })
}

fn reply_text(reply: &DocsReply) -> String {
    let mut out = String::new();
    if !reply.known {
        out.push_str(&format!("{}\n", reply.answer));
        if let Some(n) = &reply.nearest {
            out.push_str(&format!(
                "The closest section: {} — {}\n",
                n.breadcrumb(),
                n.url
            ));
        }
    } else if reply.written() {
        out.push_str(&format!("{}\n\nSources:\n", reply.answer));
        for (i, s) in reply.sources.iter().enumerate() {
            out.push_str(&format!("[{}] {} — {}\n", i + 1, s.breadcrumb(), s.url));
        }
    } else {
        for (i, q) in reply.quoted.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!(
                "{}\n{}\n{}\n",
                q.source.breadcrumb(),
                paver::chat::docs::brief(&q.text, paver::chat::docs::QUOTE),
                q.source.url
            ));
        }
    }
    out
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The docs, and the model that writes answers unless `no_llm` (`None`
/// when none is configured, or `[docs] llm = false`). The config is read
/// unless neither needs it.
fn load_with_llm(
    config: impl FnOnce() -> anyhow::Result<Config>,
    dirs: &[PathBuf],
    no_llm: bool,
) -> anyhow::Result<(Arc<Docs>, Option<AnswerLlm>)> {
    if no_llm {
        return Ok((load(config, dirs)?, None));
    }
    let config = config()?;
    let llm = AnswerLlm::from_config(&config.llm, &config.docs)
        .context("setting up the LLM for answers")?;
    Ok((load(|| Ok(config), dirs)?, llm))
}

/// `paver docs gaps`.
fn gaps(config: &Config, days: u32, json: bool) -> anyhow::Result<ExitCode> {
    let gaps = runtime()?.block_on(async {
        let db = super::open_db(config).await?;
        anyhow::Ok(office_hours::gaps(&db, days, paver::storage::now_ms()).await?)
    })?;
    let when = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    if json {
        let out: Vec<_> = gaps
            .iter()
            .map(|g| {
                json!({
                    "question": g.question,
                    "count": g.count,
                    "unanswered": g.unanswered,
                    "not_helpful": g.not_helpful,
                    "last_asked": when(g.last_asked),
                    "nearest": g.nearest.as_ref().map(|n| json!({"path": n.path, "heading": n.heading, "url": n.url})),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if gaps.is_empty() {
        println!("no gaps in the last {days} days: every question was answered and nobody voted an answer down");
    } else {
        println!("asked  unanswered  👎  last asked            question");
        for g in &gaps {
            println!(
                "{:5}  {:10}  {:2}  {}  {}",
                g.count,
                g.unanswered,
                g.not_helpful,
                when(g.last_asked),
                g.question
            );
            if let Some(n) = &g.nearest {
                println!("{:46}nearest: {} ({})", "", n.heading, n.url);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `paver docs agenda --dry-run`.
fn agenda(config: &Config, dry_run: bool, catalog: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(dry_run, "only --dry-run: the scheduler posts the agenda");
    let run = runtime()?.block_on(async {
        let catalog = paver::app::load_catalog(config, catalog.as_deref()).await?;
        let db = super::open_db(config).await?;
        // No sinks: a dry run sends nothing.
        let dispatcher = Dispatcher::new(db.clone(), Default::default(), paver::app::pace(config));
        let send = Sender::new(
            db.clone(),
            dispatcher,
            catalog.clone(),
            config.golden_path(),
        );
        let flow =
            office_hours::OfficeHours::new(db, catalog, send, config.docs.office_hours.clone());
        anyhow::Ok(flow.run_agenda(chrono::Utc::now(), true).await?)
    })?;
    match run.preview {
        Some(p) => println!("{p}"),
        None => println!("(no question is tagged for office hours)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The configured sources (git ones cloned or pulled now), or `dirs`.
fn load(
    config: impl FnOnce() -> anyhow::Result<Config>,
    dirs: &[PathBuf],
) -> anyhow::Result<Arc<Docs>> {
    let docs_config = if dirs.is_empty() {
        let docs_config = config()?.docs;
        anyhow::ensure!(
            !docs_config.sources.is_empty(),
            "no docs: configure [[docs.sources]] or give --docs DIR"
        );
        docs_config
    } else {
        DocsConfig {
            sources: dirs.iter().map(|d| DocsSource::at(d.as_path())).collect(),
            // Other docs, the same retrieval: the configured embeddings
            // when there is a config to read (none is needed).
            embeddings: config().ok().and_then(|c| c.docs.embeddings),
            ..DocsConfig::default()
        }
    };
    let describe = docs_config
        .sources
        .iter()
        .map(DocsSource::describe)
        .collect::<Vec<_>>()
        .join(", ");
    // The same reading `paver serve` does, once.
    let live = LiveDocs::new(&docs_config);
    let refresh = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(live.refresh_now());
    if live.current().is_some_and(|d| d.embedded()) {
        eprintln!("retrieval: BM25 fused with embedding similarity");
    }
    match live.current() {
        Some(docs) if refresh.failed.is_empty() => Ok(docs),
        _ => anyhow::bail!(
            "loading the docs from {describe}: {}",
            refresh.failed.join("; ")
        ),
    }
}
