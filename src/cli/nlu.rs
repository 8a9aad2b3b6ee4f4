//! `paver nlu eval` and `paver nlu bench`.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use paver::catalog::Catalog;
use paver::nlu::eval::{evaluate, load_examples};
use paver::nlu::RulesParser;

pub fn eval(catalog: &Catalog, file: &Path, min: Option<f64>) -> anyhow::Result<ExitCode> {
    let examples = load_examples(file)?;
    let parser = RulesParser::new(catalog);
    let report = evaluate(&parser, &examples);
    print!("{report}");
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
