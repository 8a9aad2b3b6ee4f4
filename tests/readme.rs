//! The README's first session, verbatim, on the shipped defaults: its
//! inputs are piped to `paver chat` with `config/paver.toml` and
//! `config/catalog.yaml` (in a fresh working directory, so the default
//! `var/` demo database and GitOps repository start from nothing), and every
//! line the README shows Paver answering must appear in what Paver said.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The `console` block under "## A first session".
fn session() -> String {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let start = readme
        .find("## A first session")
        .expect("README has a first session");
    let block = &readme[start..];
    let open = block.find("```console\n").expect("a console block") + "```console\n".len();
    let close = block[open..].find("```").unwrap();
    block[open..open + close].to_owned()
}

/// What a person types: `user> text` lines (the `$ …` command is ours).
fn inputs(session: &str) -> Vec<String> {
    session
        .lines()
        .filter(|l| !l.starts_with("paver") && !l.starts_with('$'))
        .filter_map(|l| l.split_once("> ").map(|(_, t)| t.to_owned()))
        .collect()
}

/// What the README shows Paver saying, up to any "…" (the README abridges):
/// prompt lines and card lines, but not ids and times that change per run.
fn promises(session: &str) -> Vec<String> {
    session
        .lines()
        .filter_map(|l| {
            let text = if l.starts_with("paver") {
                l.split_once("> ")?.1
            } else if l.starts_with('│') || l.starts_with("    ") {
                l
            } else {
                return None;
            };
            let text = text.split(" …").next().unwrap_or(text).trim();
            let text = text.trim_start_matches("↳ ").trim();
            (!text.is_empty() && !text.contains("(Request r-")).then(|| text.to_owned())
        })
        .collect()
}

#[test]
fn the_readme_session_runs_verbatim_on_the_shipped_defaults() {
    let session = session();
    let (inputs, promises) = (inputs(&session), promises(&session));
    assert!(session.contains("create staging for order-service with Postgres"));
    assert!(inputs.len() >= 5, "{inputs:?}");
    let root = std::env::current_dir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paver"))
        .args(["--config"])
        .arg(root.join("config/paver.toml"))
        .args(["chat", "--as", "ada"])
        .current_dir(work.path())
        .env(
            "PAVER_CATALOG__FILE",
            root.join("config/catalog.yaml").display().to_string(),
        )
        .env_remove("PAVER_DATABASE__URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for line in &inputs {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in &promises {
        assert!(
            said.contains(p.as_str()),
            "the README promises {p:?}; Paver said:\n{said}"
        );
    }
    assert!(Path::new(
        &work
            .path()
            .join("var/gitops/services/order-service/staging.yaml")
    )
    .exists());
    // The session ends green: nothing failed.
    assert!(!said.contains("✗"), "{said}");
}
