//! `paver chat`: the console adapter's terminal loop.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncBufReadExt;

use paver::app::App;
use paver::catalog::SharedCatalog;
use paver::chat::console::{os_user, ConsoleSink};
use paver::chat::messages;
use paver::chat::{ChatSink, ChatUser, Conversation, Inbound, Platform};
use paver::config::Config;
use paver::domain::RequestState;
use paver::engine::Engine;
use paver::util::redact_url;

/// How long, at the end of piped input, to wait for running work.
const DRAIN: Duration = Duration::from_secs(60);

pub fn run(
    config: &Config,
    catalog_path: Option<&Path>,
    as_user: Option<String>,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(session(config, catalog_path, as_user))
}

/// Who may speak as whom at this console. On the default demo database
/// (one's own SQLite file) anyone may play anyone: that is how four-eyes is
/// tried out alone. On any other database the console runs the real engine
/// against data others rely on, so speaking as someone else, and approving
/// as them, needs `console.allow_impersonation = true`.
struct Identity {
    /// The OS account at the keyboard; the audit log's `chat` column names it.
    os_user: String,
    may_impersonate: bool,
    /// Why impersonation is refused, when it is.
    refusal: String,
}

impl Identity {
    fn new(config: &Config) -> Self {
        Identity {
            os_user: os_user(),
            may_impersonate: config.database.is_default() || config.console.allow_impersonation,
            refusal: format!(
                "the database {} may be shared, and speaking as someone else would put their name on your requests and approvals. \
                 Set console.allow_impersonation = true (PAVER_CONSOLE__ALLOW_IMPERSONATION=true) to allow it, on a database nobody relies on",
                redact_url(&config.database.url)
            ),
        }
    }

    /// Whether speaking as `user` is allowed: always as oneself.
    fn may_speak_as(&self, user: &str) -> bool {
        self.may_impersonate || user == self.os_user
    }
}

async fn session(
    config: &Config,
    catalog_path: Option<&Path>,
    as_user: Option<String>,
) -> anyhow::Result<ExitCode> {
    let identity = Identity::new(config);
    if let Some(u) = as_user.as_deref().filter(|u| !identity.may_speak_as(u)) {
        anyhow::bail!(
            "`--as {u}` refused: you are {}, and {}",
            identity.os_user,
            identity.refusal
        );
    }
    let console = ConsoleSink::new(Box::new(std::io::stdout()));
    let mut sinks: HashMap<String, Arc<dyn ChatSink>> = HashMap::new();
    sinks.insert(Platform::Console.as_str().into(), Arc::new(console.clone()));
    let app = App::start(config, catalog_path, sinks).await?;
    let (engine, shared) = (app.engine.clone(), app.catalog.clone());
    console.learn_names(&shared.current());
    reshow_open_cards(&engine, &console, &shared).await?;

    let mut user = match as_user {
        Some(u) => u,
        // The demo starts as someone who can do things.
        None if identity.may_impersonate => shared
            .current()
            .users()
            .next()
            .map(|u| u.name.to_string())
            .unwrap_or_else(|| identity.os_user.clone()),
        None => identity.os_user.clone(),
    };
    let interactive = std::io::stdin().is_terminal();
    let greet = format!(
        "Paver console. You are {user} (OS user {}). Type a request (\"help\" for ideas), /press LABEL (or /press LABEL: REASON), /as USER, /quit.\n",
        identity.os_user
    );
    eprint!("{greet}");
    let mut lines = line_source(interactive);
    let mut n = 0u64;
    while let Some(line) = lines.recv().await {
        let line = line.trim().to_owned();
        if line.is_empty() {
            continue;
        }
        if !interactive {
            println!("{user}> {line}");
        }
        let chat_user = chat_user(&shared, &identity.os_user, &user);
        let conv = Conversation {
            platform: Platform::Console,
            channel: "console".into(),
            thread: None,
        };
        if let Some(rest) = line.strip_prefix('/') {
            let (cmd, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            match cmd {
                "quit" | "exit" => break,
                "as" if !arg.trim().is_empty() && !identity.may_speak_as(arg.trim()) => {
                    println!(
                        "(refused: you stay {user}. You are OS user {}, and {})",
                        identity.os_user, identity.refusal
                    );
                }
                "as" if !arg.trim().is_empty() => {
                    user = arg.trim().to_owned();
                    if chat_user_known(&shared, &user) {
                        println!("(you are now {user})");
                    } else {
                        println!("(you are now {user}, who is not in the catalog)");
                    }
                }
                "press" if !arg.trim().is_empty() => {
                    // `/press Won't fix: not worth it` — what follows the
                    // colon goes with the press (the reason Won't fix needs).
                    let (which, reason) = match console.find_button(arg) {
                        Some(p) => (Some(p), None),
                        None => match arg.split_once(':') {
                            Some((label, reason)) => {
                                (console.find_button(label), Some(reason.trim()))
                            }
                            None => (None, None),
                        },
                    };
                    match which {
                        Some(payload) => {
                            engine
                                .handle_button_with(&chat_user, &conv, &payload, reason)
                                .await?
                        }
                        None => println!("(no card has a button {:?})", arg.trim()),
                    }
                }
                _ => println!("(commands: /press LABEL|N, /as USER, /quit)"),
            }
        } else {
            n += 1;
            engine
                .handle_message(Inbound {
                    event_id: Some(format!("console-{}-{n}", std::process::id())),
                    user: chat_user,
                    conversation: conv,
                    text: line,
                })
                .await?;
        }
        if !interactive {
            // In a pipe, let each line's work show before the next line.
            engine.wait_idle(DRAIN).await?;
        }
    }
    if !engine.wait_idle(DRAIN).await? {
        eprintln!("(stopping with work still running; it resumes on the next start)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Cards still waiting for a press are shown again, so their buttons work
/// across restarts.
async fn reshow_open_cards(
    engine: &Engine,
    console: &ConsoleSink,
    shared: &SharedCatalog,
) -> anyhow::Result<()> {
    let catalog = shared.current();
    let golden = engine.golden_path().clone();
    let mut open = Vec::new();
    for state in [
        RequestState::Proposed,
        RequestState::AwaitingApproval,
        RequestState::Failed,
    ] {
        open.extend(
            engine
                .db()
                .requests()
                .in_state(state)
                .await?
                .into_iter()
                .filter(|r| r.platform == Platform::Console),
        );
    }
    if open.is_empty() {
        return Ok(());
    }
    open.sort_by_key(|r| r.created_at);
    println!("(open requests from earlier)");
    for req in open {
        let message = messages::card(&req, &catalog, &golden, None);
        if let Ok(r) = console.post(&req.channel, None, &message).await {
            engine
                .db()
                .outbox()
                .save_card(&req.id, req.platform, &req.channel, &r)
                .await?;
        }
    }
    Ok(())
}

fn chat_user_known(shared: &SharedCatalog, user: &str) -> bool {
    shared.current().user(user).is_some()
}

/// The console's chat account is the OS user (so the audit log's `chat`
/// column reads `console:<os user>` whoever is spoken as); the catalog user
/// is the one spoken as.
fn chat_user(shared: &SharedCatalog, os_user: &str, user: &str) -> ChatUser {
    ChatUser {
        platform: Platform::Console,
        id: os_user.to_owned(),
        catalog: shared.current().user(user).map(|u| u.name.clone()),
    }
}

/// Lines from a terminal (with line editing) or from a pipe.
fn line_source(interactive: bool) -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    if interactive {
        std::thread::spawn(move || {
            let Ok(mut editor) = rustyline::DefaultEditor::new() else {
                return;
            };
            while let Ok(line) = editor.readline("you> ") {
                let _ = editor.add_history_entry(line.as_str());
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
    } else {
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
    }
    rx
}
