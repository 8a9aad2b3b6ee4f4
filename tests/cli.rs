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
fn parse_explain_shows_the_deciding_cue() {
    let out = paver(
        &[
            "parse",
            "--catalog",
            SAMPLE_CATALOG,
            "--explain",
            "the 2.2.0 rollout of user-service on staging is bad, roll it back",
        ],
        "",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Each cue with its role and weight: the noun is a topic, the verb the
    // request.
    assert!(
        text.contains(r#"cue         "rollout" -> deploy (topic (noun)), weight 0.5"#),
        "{text}"
    );
    assert!(
        text.contains(r#"cue         "roll" -> rollback (leads the request), weight 3.0"#),
        "{text}"
    );
    assert!(text.contains("readings    rollback 3.0"), "{text}");
    assert!(
        text.contains(r#"decided by  the rollback cue "roll""#),
        "{text}"
    );
    assert!(text.contains("confidence  "), "{text}");
    assert!(
        text.contains(
            r#"action      {"action":"rollback","service":"user-service","environment":"staging"}"#
        ),
        "{text}"
    );
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

/// Driver templates: the old `{service}` syntax of deployed configurations
/// still passes; a template that does not parse, or names what it may not
/// use, is a problem check-config reports.
#[test]
fn check_config_reads_old_templates_and_reports_bad_ones() {
    let mut old = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        old,
        "[gitops]\nurl_template = \"https://{{service}}.{{environment}}.example.internal\"\n\n[backstage.environment_values]\nservice = \"{{service}}\"\nresources = \"{{resources}}\""
    )
    .unwrap();
    let out = paver(
        &["check-config", "--config", old.path().to_str().unwrap()],
        "",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        bad,
        "[gitops]\nurl_template = \"https://{{{{ servce }}}}.example.internal\"\n\n[drivers]\ndeploy = \"argocd\"\n\n[argocd]\nbase_url = \"https://argocd.example.internal\"\nrevision_template = \"v{{{{ version \""
    )
    .unwrap();
    let out = paver(
        &["check-config", "--config", bad.path().to_str().unwrap()],
        "",
        &[("PAVER_ARGOCD__TOKEN", "t")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("problem: gitops.url_template"), "{err}");
    assert!(err.contains("problem: argocd.revision_template"), "{err}");
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

/// Values from the environment are text for text keys, as users type them
/// (`found unsigned int, expected a string` before), and numbers still work
/// for numeric keys.
#[test]
fn numeric_environment_values_fill_text_keys() {
    let digits_key = "1".repeat(64);
    let out = paver(
        &["check-config", "--config", "config/paver.toml"],
        "",
        &[
            ("PAVER_DISCORD__APPLICATION_ID", "1100000000000000001"),
            ("PAVER_DISCORD__PUBLIC_KEY", &digits_key),
            ("PAVER_SLACK__SIGNING_SECRET", "12345678"),
            ("PAVER_DISCORD__TOKEN", "0042"),
            ("PAVER_LLM__MODEL", "7"),
            ("PAVER_LLM__BASE_URL", "http://127.0.0.1:9/v1"),
            ("PAVER_CATALOG__REFRESH_SECS", "60"),
            ("PAVER_DISCORD__GATEWAY", "false"),
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("signing secret set"), "{stdout}");
    assert!(stdout.contains("token set"), "{stdout}");
    assert!(stdout.contains("7 at http://127.0.0.1:9/v1"), "{stdout}");
    assert!(!stdout.contains("12345678"), "{stdout}");
    // A number where a number belongs is still checked as one.
    let out = paver(
        &["check-config", "--config", "config/paver.toml"],
        "",
        &[("PAVER_CATALOG__REFRESH_SECS", "0")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refresh_secs"));
}

/// A password inside `database.url` is a secret: not in the config file
/// (with line context), fine from the environment or `url_file`, and
/// shown redacted, query parameters included.
#[test]
fn database_passwords_are_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let body = std::fs::read_to_string("config/paver.toml")
        .unwrap()
        .replace(
            "url = \"sqlite://var/paver.db\"",
            "url = \"postgres://paver:hunter2@db/paver\"",
        );
    let inline = dir.path().join("inline.toml");
    std::fs::write(&inline, &body).unwrap();
    let out = paver(
        &["check-config", "--config", inline.to_str().unwrap()],
        "",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = body.lines().position(|l| l.contains("hunter2")).unwrap() + 1;
    assert!(
        err.contains(&format!(":{line}:")) && err.contains("database.url_file"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let url_file = dir.path().join("db-url");
    std::fs::write(
        &url_file,
        "postgres://paver@db/paver?sslmode=require&password=hunter2\n",
    )
    .unwrap();
    let from_file = dir.path().join("from-file.toml");
    std::fs::write(
        &from_file,
        std::fs::read_to_string("config/paver.toml")
            .unwrap()
            .replace(
                "url = \"sqlite://var/paver.db\"",
                &format!("url_file = {:?}", url_file.to_str().unwrap()),
            ),
    )
    .unwrap();
    let out = paver(
        &["check-config", "--config", from_file.to_str().unwrap()],
        "",
        &[],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("postgres://paver@db/paver?sslmode=require&password=***"),
        "{all}"
    );
    assert!(!all.contains("hunter2"), "{all}");
}

/// Two catalog users sharing an email, a Slack id or a Discord id cannot be
/// told apart: check-config names both and what they share, and fails.
#[test]
fn check_config_refuses_a_catalog_with_shared_identities() {
    let mut catalog = tempfile::NamedTempFile::new().unwrap();
    let sample = std::fs::read_to_string(SAMPLE_CATALOG).unwrap();
    write!(
        catalog,
        "{sample}\n---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: mallory\n  annotations: {{slack.com/user-id: U0ALICE}}\nspec: {{profile: {{email: mallory@example.com}}}}\n"
    )
    .unwrap();
    let path = catalog.path().to_str().unwrap();
    let out = paver(
        &[
            "check-config",
            "--config",
            "config/paver.toml",
            "--catalog",
            path,
        ],
        "",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`alice` and `mallory` share the Slack user id \"U0ALICE\""),
        "{err}"
    );
    // The sample catalog itself is fine through --catalog too.
    let out = paver(
        &[
            "check-config",
            "--config",
            "config/paver.toml",
            "--catalog",
            SAMPLE_CATALOG,
        ],
        "",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(SAMPLE_CATALOG));
}

/// Every command that reads the catalog takes `--catalog`.
#[test]
fn every_command_reading_the_catalog_takes_catalog() {
    for cmd in [
        &["serve", "--help"][..],
        &["chat", "--help"],
        &["check-config", "--help"],
        &["parse", "--help"],
        &["nlu", "eval", "--help"],
        &["nlu", "bench", "--help"],
    ] {
        let out = paver(cmd, "", &[]);
        assert!(out.status.success(), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("--catalog <PATH>"),
            "{cmd:?}"
        );
    }
    // serve uses it: a missing file is named.
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/paver.db", dir.path().display());
    let missing = dir.path().join("no-such-catalog.yaml");
    let out = paver(
        &[
            "serve",
            "--config",
            "config/paver.toml",
            "--catalog",
            missing.to_str().unwrap(),
        ],
        "",
        &[
            ("PAVER_DATABASE__URL", &db),
            ("PAVER_SERVER__LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-catalog.yaml"), "{err}");
}

/// `paver scorecard --format json`: per service its level and checks with
/// name, weight and passed, over the sample catalog, on a database of its own.
#[test]
fn scorecard_prints_levels_and_checks_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/p.db", dir.path().display());
    let out = paver(
        &["scorecard", "--format", "json", "--catalog", SAMPLE_CATALOG],
        "",
        &[("PAVER_DATABASE__URL", &db)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 20);
    let legacy = services
        .iter()
        .find(|s| s["service"] == "legacy-reports")
        .unwrap();
    assert_eq!(legacy["level"], Value::Null);
    let owner = legacy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "has-owner")
        .unwrap();
    assert_eq!(
        (owner["weight"].as_str(), owner["passed"].as_bool()),
        (Some("critical"), Some(false))
    );
    assert_eq!(services[0]["checks"].as_array().unwrap().len(), 7);
    let out = paver(
        &[
            "scorecard",
            "--team",
            "team-payments",
            "--catalog",
            SAMPLE_CATALOG,
        ],
        "",
        &[("PAVER_DATABASE__URL", &db)],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("billing-api (team-payments): below Bronze"),
        "{text}"
    );
    let out = paver(
        &[
            "scorecard",
            "--service",
            "nope",
            "--catalog",
            SAMPLE_CATALOG,
        ],
        "",
        &[("PAVER_DATABASE__URL", &db)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope is not a service"));
}

#[test]
fn nags_run_once_dry_prints_the_digests_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/nags.db", dir.path().display());
    let out = paver(
        &[
            "nags",
            "run-once",
            "--dry-run",
            "--team",
            "team-commerce",
            "--config",
            "config/paver.toml",
            "--catalog",
            "../shared/fixtures/catalog.yaml",
        ],
        "",
        &[("PAVER_DATABASE__URL", &db)],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("── team-commerce: would send"), "{text}");
    assert!(
        text.contains("Scorecard digest for team-commerce: 28 failing checks"),
        "{text}"
    );
    assert!(
        text.contains("[1 Snooze 1 week] [2 Won't fix] [3 Re-check now]"),
        "{text}"
    );
    assert!(
        !text.contains("team-data"),
        "only the team asked for: {text}"
    );
}

/// `paver audit export`: the audit log as JSON lines, oldest first, within
/// `--since`/`--until`, with who, when, the action's summary and the
/// state; secrets in free text redacted, chat ids not written.
#[test]
fn audit_export_prints_the_log_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/audit.db", dir.path().display());
    let day = 24 * 3600 * 1000_i64;
    let now = chrono::Utc::now().timestamp_millis();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let d = paver::storage::Db::connect(&db).await.unwrap();
        let run = |sql: &'static str, id: &'static str, at: i64| {
            let d = d.clone();
            async move {
                sqlx::query(sql)
                    .bind(id)
                    .bind(at)
                    .execute(d.pool())
                    .await
                    .unwrap();
            }
        };
        for (id, at) in [("r-old", now - 10 * day), ("r-new", now - 2 * day)] {
            sqlx::query(
                "INSERT INTO requests (id, nonce, state, action_kind, action_json, action_hash, service, environment, \
                 requester, requester_chat_id, platform, channel, created_at, updated_at) \
                 VALUES ($1, 'n', 'failed', 'deploy', $2, 'h1', 'order-service', 'production', 'ada', 'U0SECRETID', 'slack', 'C1', $3, $4)",
            )
            .bind(id)
            .bind(r#"{"action":"deploy","service":"order-service","environment":"production","version":"1.2.3"}"#)
            .bind(at)
            .bind(at)
            .execute(d.pool())
            .await
            .unwrap();
        }
        let event = "INSERT INTO request_events (request_id, at, actor, chat, transition, from_state, to_state, detail) \
                     VALUES ($1, $2, 'ada', 'slack', 'propose', NULL, 'proposed', '')";
        run(event, "r-old", now - 10 * day).await;
        run(event, "r-new", now - 2 * day).await;
        run(
            "INSERT INTO approvals (request_id, approver, decision, action_hash, at) VALUES ($1, 'bob', 'approve', 'h1', $2)",
            "r-new",
            now - 2 * day + 2000,
        )
        .await;
        run(
            "INSERT INTO request_events (request_id, at, actor, chat, transition, from_state, to_state, detail) \
             VALUES ($1, $2, 'executor', 'paver', 'fail', 'running', 'failed', 'push to https://bot:hunter2@git.example.com/ops.git refused')",
            "r-new",
            now - 2 * day + 1000,
        )
        .await;
    });
    let out = paver(
        &["audit", "export", "--since", "7d", "--format", "jsonl"],
        "",
        &[("PAVER_DATABASE__URL", &db)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("U0SECRETID"), "{text}");
    let rows = lines(&out);
    let kinds: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap(),
                r["request_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("event", "r-new"),
            ("event", "r-new"),
            ("approval", "r-new")
        ],
        "oldest first, r-old before --since: {text}"
    );
    let first = &rows[0];
    assert_eq!(first["action"], "deploy");
    assert_eq!(first["summary"], "Deploy order-service 1.2.3 to production");
    assert_eq!(first["who"], "ada");
    assert_eq!(first["transition"], "propose");
    assert_eq!(first["state"], "proposed");
    assert_eq!(first["request_state"], "failed");
    assert_eq!(first["service"], "order-service");
    assert_eq!(first["environment"], "production");
    assert!(first["at"].as_str().unwrap().ends_with('Z'), "{first}");
    assert_eq!(
        rows[1]["detail"],
        "push to https://bot:***@git.example.com/ops.git refused"
    );
    assert_eq!(rows[2]["who"], "bob");
    assert_eq!(rows[2]["decision"], "approve");
    assert_eq!(rows[2]["action_hash"], "h1");
    // --until bounds it (not included); a date works too.
    let until = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let out = paver(
        &["audit", "export", "--since", "30d", "--until", &until],
        "",
        &[("PAVER_DATABASE__URL", &db)],
    );
    let rows = lines(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["request_id"], "r-old");
    let out = paver(
        &["audit", "export", "--since", "2000-01-01"],
        "",
        &[("PAVER_DATABASE__URL", &db)],
    );
    assert_eq!(lines(&out).len(), 4);
    let out = paver(
        &["audit", "export", "--since", "last tuesday"],
        "",
        &[("PAVER_DATABASE__URL", &db)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}
