//! `paver docs search|answer|eval`: office hours from the terminal — what
//! the index finds for a question, the answer chat would give (written by
//! the LLM when one is configured), and how well retrieval and answers do
//! on a question set.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use paver::config::Config;
use paver::docs::answer::{self, AnswerLlm, DocsReply, Via};
use paver::docs::{eval, Docs, DocsSource};

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
            let hits = docs.search(&query.join(" "), k);
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
                    println!(
                        "{:7.3}  {} › {}{flag}\n         {}  coverage {:.2}",
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
            let r = eval::run(&docs, &cases);
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
    tokio::runtime::Builder::new_current_thread()
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
) -> anyhow::Result<(Docs, Option<AnswerLlm>)> {
    if no_llm {
        return Ok((load(config, dirs)?, None));
    }
    let config = config()?;
    let llm = AnswerLlm::from_config(&config.llm, &config.docs)
        .context("setting up the LLM for answers")?;
    Ok((load(|| Ok(config), dirs)?, llm))
}

fn load(config: impl FnOnce() -> anyhow::Result<Config>, dirs: &[PathBuf]) -> anyhow::Result<Docs> {
    let sources = if dirs.is_empty() {
        let sources = config()?.docs.sources;
        anyhow::ensure!(
            !sources.is_empty(),
            "no docs: configure [[docs.sources]] or give --docs DIR"
        );
        sources
    } else {
        dirs.iter().map(|d| DocsSource::at(d.as_path())).collect()
    };
    let describe = sources
        .iter()
        .map(|s| s.dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Docs::load(&sources).with_context(|| format!("loading the docs from {describe}"))
}
