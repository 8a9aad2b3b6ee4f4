//! `paver nlu eval` and `paver nlu bench`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use paver::catalog::Catalog;
use paver::config::{Config, NluMode};
use paver::nlu::eval::{evaluate, load_examples, LlmStats, Report};
use paver::nlu::{RulesParser, Understander, Understanding};

pub fn eval(
    config: &Config,
    catalog: &Catalog,
    file: &Path,
    mode: NluMode,
    min: Option<f64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // With `--json`, stdout holds the report alone; what it measured goes
    // to stderr.
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let examples = load_examples(file)?;
    let parser = RulesParser::new(catalog);
    let report = match Understander::from_config(&config.llm, mode)? {
        None => {
            if mode == NluMode::Auto {
                say("nlu auto: no LLM is configured, so this is the rules parser alone\n".into());
            }
            evaluate(&parser, &examples)
        }
        Some(u) => {
            let first = match u.routing() {
                paver::nlu::llm::Routing::RulesFirst => "the rules parser first, then",
                paver::nlu::llm::Routing::LlmFirst => "the LLM first:",
            };
            say(format!(
                "nlu {}: {first} {}\n",
                format!("{mode:?}").to_lowercase(),
                u.describe()
            ));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let u = Arc::new(u);
            let parser = Arc::new(parser);
            let catalog = Arc::new(catalog.clone());
            // As many at once as the LLM takes, so latencies are the
            // calls' own and not time spent queueing for a slot.
            let slots = Arc::new(tokio::sync::Semaphore::new(
                config.llm.max_concurrency.max(1),
            ));
            let understood: Vec<Understanding> = rt.block_on(async {
                let tasks: Vec<_> = examples
                    .iter()
                    .map(|ex| {
                        let (u, parser, catalog) = (u.clone(), parser.clone(), catalog.clone());
                        let slots = slots.clone();
                        let text = ex.text.clone();
                        tokio::spawn(async move {
                            let _slot = slots.acquire().await.expect("never closed");
                            u.understand(&parser, &catalog, &text).await
                        })
                    })
                    .collect();
                let mut out = Vec::with_capacity(tasks.len());
                for t in tasks {
                    out.push(t.await.expect("understanding does not panic"));
                }
                out
            });
            let mut report = Report::default();
            for (ex, u) in examples.iter().zip(&understood) {
                report.score(
                    ex,
                    serde_json::to_value(&u.action).expect("actions serialize"),
                );
            }
            report.llm = Some(LlmStats::measure(&understood));
            report
        }
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    match min {
        Some(min) if report.accuracy() < min => {
            eprintln!(
                "accuracy {:.1}% is below the required {:.1}%",
                100.0 * report.accuracy(),
                100.0 * min
            );
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Single-threaded: the number is per core by construction.
pub fn bench(catalog: &Catalog, file: &Path, seconds: f64) -> anyhow::Result<ExitCode> {
    let examples = load_examples(file)?;
    anyhow::ensure!(!examples.is_empty(), "{} has no examples", file.display());
    let parser = RulesParser::new(catalog);
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    // Warm caches and the allocator before measuring.
    for t in &texts {
        std::hint::black_box(parser.parse(t));
    }
    let budget = Duration::from_secs_f64(seconds.max(0.1));
    let mut samples: Vec<u64> = Vec::with_capacity(1 << 20);
    let started = Instant::now();
    'outer: loop {
        for t in &texts {
            let t0 = Instant::now();
            std::hint::black_box(parser.parse(std::hint::black_box(t)));
            samples.push(t0.elapsed().as_nanos() as u64);
            if samples.len() % 1024 == 0 && started.elapsed() >= budget {
                break 'outer;
            }
        }
    }
    let elapsed = started.elapsed();
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    println!("requests          {}", samples.len());
    println!(
        "throughput        {:.0} requests/s (one core)",
        samples.len() as f64 / elapsed.as_secs_f64()
    );
    println!("latency p50       {:.1} µs", pct(0.50));
    println!("latency p99       {:.1} µs", pct(0.99));
    println!("latency max       {:.1} µs", pct(1.0));
    Ok(ExitCode::SUCCESS)
}
