//! The `paver` binary, driven as a user would.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const SAMPLE_CATALOG: &str = "../shared/fixtures/catalog.yaml";

fn paver(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paver"));
    cmd.args(args)
        .env_remove("PAVER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("paver runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

#[test]
fn parse_speaks_the_contract() {
    let input = concat!(
        r#"{"id": "a", "text": "create staging for order-service with Postgres"}"#,
        "\n",
        r#"{"id": 7, "text": "deploy payment to staging"}"#,
        "\n\n",
        r#"{"id": "c", "text": "<@U0BOT> thanks!"}"#,
        "\n"
    );
    let out = paver(
        &["parse", "--catalog", SAMPLE_CATALOG, "--nlu", "rules"],
        input,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    assert_eq!(
        got[0],
        json!({"id": "a", "action": "create_environment", "service": "order-service",
               "environment": "staging", "resources": ["postgres"]})
    );
    // The id comes first, then the action, then its fields.
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(
        raw.starts_with(r#"{"id":"a","action":"create_environment","service""#),
        "{raw}"
    );
    assert_eq!(got[1]["id"], json!(7));
    assert_eq!(got[1]["action"], "clarify");
    assert_eq!(got[1]["missing"], json!(["service"]));
    assert_eq!(
        got[1]["candidates"],
        json!(["payment-gateway", "payment-service"])
    );
    assert_eq!(got[2], json!({"id": "c", "action": "none"}));
}

#[test]
fn a_bad_line_gets_an_error_and_the_run_goes_on() {
    let input =
        "not json\n{\"id\": 1}\n{\"id\": 2, \"text\": 5}\n[1]\n{\"id\": 3, \"text\": \"help\"}\n";
    let out = paver(&["parse", "--catalog", SAMPLE_CATALOG], input, &[]);
    assert!(out.status.success());
    let got = lines(&out);
    assert_eq!(got.len(), 5);
    assert_eq!(got[0]["id"], Value::Null);
    assert!(got[0]["error"].as_str().unwrap().contains("invalid JSON"));
    assert_eq!(got[1]["id"], json!(1));
    assert!(got[1]["error"]
        .as_str()
        .unwrap()
        .contains("missing \"text\""));
    assert!(got[2]["error"]
        .as_str()
        .unwrap()
        .contains("must be a string"));
    assert!(got[3]["error"].is_string());
    assert_eq!(got[4], json!({"id": 3, "action": "help"}));
}

#[test]
fn llm_mode_without_an_llm_is_a_clear_error() {
    let out = paver(
        &["parse", "--catalog", SAMPLE_CATALOG, "--nlu", "llm"],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no LLM is configured"), "{err}");
}

#[test]
fn eval_reports_and_enforces_a_floor() {
    let out = paver(
        &[
            "nlu",
            "eval",
            "../shared/eval/public.jsonl",
            "--catalog",
            SAMPLE_CATALOG,
            "--min-accuracy",
            "0.98",
        ],
        "",
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("overall") && text.contains("create_environment"),
        "{text}"
    );
    // Against an empty catalog every service is unknown: the floor must bite.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = paver(
        &[
            "nlu",
            "eval",
            "../shared/eval/public.jsonl",
            "--catalog",
            empty.path().to_str().unwrap(),
            "--min-accuracy",
            "0.98",
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("misses:"));
}

#[test]
fn check_config_accepts_the_example_and_points_at_mistakes() {
    let out = paver(&["check-config", "--config", "config/paver.toml"], "", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        bad,
        "[server]\nlisten = \"127.0.0.1:8080\"\n\n[catalog]\nrefresh_secs = \"soon\""
    )
    .unwrap();
    let out = paver(
        &["check-config", "--config", bad.path().to_str().unwrap()],
        "",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":5:") && err.contains("refresh_secs = \"soon\""),
        "{err}"
    );

    // Environment variables layer over the file, and are checked too.
    let out = paver(
        &["check-config", "--config", "config/paver.toml"],
        "",
        &[("PAVER_DATABASE__URL", "mysql://nope")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.url"));
}

#[test]
fn secrets_from_the_environment_are_used_but_never_printed() {
    let out = paver(
        &["check-config", "--config", "config/paver.toml"],
        "",
        &[
            ("PAVER_SLACK__SIGNING_SECRET", "sup3r-s3cret-value"),
            ("PAVER_DATABASE__URL", "postgres://paver:hunter2@db/paver"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("signing secret set"), "{all}");
    assert!(
        !all.contains("sup3r-s3cret-value") && !all.contains("hunter2"),
        "{all}"
    );
}
