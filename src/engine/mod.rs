//! The dispatcher: every chat event comes in here, is understood once, and
//! goes to the flow that owns it — a reply in a proposal's thread and every
//! mutating action to the request flow ([`crate::requests`]), everything
//! read-only to the answers ([`crate::answers`]). It holds no flow logic of
//! its own: deduplication, the parser for the current catalog, and the
//! count of work in flight.

pub mod inbox;
mod parser;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use crate::answers::{Answer, Answers};
use crate::catalog::SharedCatalog;
use crate::chat::dispatcher::Dispatcher;
use crate::chat::send::Sender;
use crate::chat::{ChatUser, Conversation, Inbound};
use crate::docs::office_hours::OfficeHours;
use crate::domain::{Action, GoldenPath, Reason};
use crate::drivers::Driver;
use crate::nlu::{Understander, Understanding};
use crate::policy::PolicyConfig;
use crate::report::digest::Digests;
use crate::requests::approvals::ApprovalNoticeConfig;
use crate::requests::{ExecutorSettings, RequestSettings, Requests};
use crate::scorecards::{Scorecards, ScorecardsConfig};
use crate::storage::{Db, StorageError};
use crate::util::scheduler::Schedulers;
use crate::util::tasks::Tracker;
use retention::Retention;

pub use crate::chat::Handled;
pub use crate::util::tasks::Overloaded;

use parser::ParserCache;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Whether chat users unknown to the catalog may request changes.
    pub unknown_users_may_request: bool,
    /// How long a proposal waits for its requester's confirmation.
    pub proposal_ttl: Duration,
    /// Attempts of a job that fails with a transient error (a crashed
    /// run counts as one).
    pub attempts: u32,
    /// The durable executor's workers, leases and backoff.
    pub executor: ExecutorSettings,
    /// The LLM side of understanding (`auto`/`llm`); `None`: rules only.
    pub understander: Option<Arc<Understander>>,
    /// Acknowledged chat events handled at once, at most; past it adapters
    /// answer "busy" so the platform redelivers later, instead of Paver
    /// queueing without bound.
    pub max_in_flight: usize,
    /// Resource sizes: shown on cards as the drivers receive them.
    pub golden_path: GoldenPath,
    /// Monthly prices (`[cost]`): the estimate on cards, the cost limit.
    pub prices: crate::domain::PriceTable,
    /// Where approvers are told, and when they are reminded.
    pub approval_notices: ApprovalNoticeConfig,
    /// The scorecards' checks and links.
    pub scorecards: ScorecardsConfig,
    /// The docs questions are answered from (`None`: none configured).
    pub docs: Option<crate::docs::LiveDocs>,
    /// Where docs questions go to humans (`[docs.office_hours]`).
    pub office_hours: crate::docs::OfficeHoursConfig,
    /// The platform report's digest and gauges (`[report]`).
    pub report: crate::report::config::ReportConfig,
    /// The model that writes answers from the docs (`None`: quoted).
    pub docs_llm: Option<Arc<crate::docs::answer::AnswerLlm>>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            unknown_users_may_request: false,
            proposal_ttl: Duration::from_secs(24 * 3600),
            attempts: 6,
            executor: ExecutorSettings::default(),
            understander: None,
            // A burst of 4,000 Slack events is acknowledged about half as
            // fast again as it is handled on one SQLite replica, so about
            // 1,400 are in flight at its peak: at 1,024 over half of them
            // were refused (Slack redelivers a refused event a minute
            // later). Each costs a task and its event (a few KiB).
            max_in_flight: 4096,
            golden_path: GoldenPath::default(),
            prices: crate::domain::PriceTable::default(),
            approval_notices: ApprovalNoticeConfig::default(),
            scorecards: ScorecardsConfig::default(),
            docs: None,
            office_hours: crate::docs::OfficeHoursConfig::default(),
            report: crate::report::config::ReportConfig::default(),
            docs_llm: None,
        }
    }
}

/// How soon [`Engine::wait_idle`] looks again when nothing told it to.
const IDLE_RECHECK: Duration = Duration::from_millis(100);

/// Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    parser: ParserCache,
    understander: Option<Arc<Understander>>,
    requests: Requests,
    answers: Answers,
    scorecards: Scorecards,
    send: Sender,
    tasks: Tracker,
    /// The dispatcher's word after each round it sent (see `wait_idle`).
    sent: Arc<tokio::sync::Notify>,
    docs: Option<crate::docs::LiveDocs>,
    office_hours: OfficeHours,
    report: Digests,
    docs_llm: Option<Arc<crate::docs::answer::AnswerLlm>>,
}

impl Engine {
    pub fn new(
        db: Db,
        catalog: SharedCatalog,
        policy: PolicyConfig,
        driver: Arc<dyn Driver>,
        dispatcher: Dispatcher,
        settings: EngineSettings,
    ) -> Self {
        let tasks = Tracker::new(settings.max_in_flight);
        let sent = dispatcher.sent();
        let send = Sender::new(
            db.clone(),
            dispatcher,
            catalog.clone(),
            settings.golden_path.clone(),
        );
        let executor = crate::requests::Executor::new(db.clone(), settings.executor.clone());
        let answers = Answers::new(driver.clone(), policy.unknown_users);
        let scorecards = Scorecards::new(
            db.clone(),
            catalog.clone(),
            settings.scorecards.clone(),
            send.clone(),
        );
        let office_hours = OfficeHours::new(
            db.clone(),
            catalog.clone(),
            send.clone(),
            settings.office_hours.clone(),
        );
        let report = Digests::new(
            db.clone(),
            catalog.clone(),
            send.clone(),
            settings.report.clone(),
        );
        let scores: Arc<dyn crate::policy::Scores> = Arc::new(scorecards.clone());
        let requests = Requests::new(
            db.clone(),
            catalog.clone(),
            policy,
            driver,
            send.clone(),
            RequestSettings {
                unknown_users_may_request: settings.unknown_users_may_request,
                proposal_ttl: settings.proposal_ttl,
                attempts: settings.attempts,
                understander: settings.understander.clone(),
                approval_notices: settings.approval_notices.clone(),
                scores: Some(scores),
                prices: settings.prices.clone(),
            },
            executor,
            tasks.clone(),
        );
        Engine {
            inner: Arc::new(Inner {
                db,
                parser: ParserCache::new(catalog),
                understander: settings.understander,
                requests,
                answers,
                scorecards,
                docs: settings.docs.clone(),
                office_hours,
                report,
                docs_llm: settings.docs_llm.clone(),
                send,
                tasks,
                sent,
            }),
        }
    }

    /// The docs questions are answered from, kept current by their watcher.
    pub fn docs(&self) -> Option<&crate::docs::LiveDocs> {
        self.inner.docs.as_ref()
    }

    /// The resource sizes cards show and drivers receive.
    pub fn golden_path(&self) -> &GoldenPath {
        self.inner.send.golden_path()
    }

    /// The way into the outbox, for flows the engine does not route to
    /// (deploy notifications arrive by HTTP hook, not by chat).
    pub fn sender(&self) -> &Sender {
        &self.inner.send
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The scorecard flow (for hooks, the CLI and the nag scheduler).
    pub fn scorecards(&self) -> &Scorecards {
        &self.inner.scorecards
    }

    /// The docs flow's humans in the loop (the agenda scheduler, the CLI).
    pub fn office_hours(&self) -> &OfficeHours {
        &self.inner.office_hours
    }

    /// The platform report's digest and `/metrics` gauges.
    pub fn report(&self) -> &Digests {
        &self.inner.report
    }

    /// The request flow (recovery, sweeping, the executor).
    pub fn requests(&self) -> &Requests {
        &self.inner.requests
    }

    /// A chat message: understood once, then handled by the flow that owns
    /// it. A redelivered event is acknowledged and dropped.
    pub async fn handle_message(&self, msg: Inbound) -> Result<Handled, EngineError> {
        use tracing::Instrument;
        // Every line logged while a message is handled names its event.
        let span = tracing::info_span!(
            "message",
            platform = msg.conversation.platform.as_str(),
            event = msg.event_id.as_deref().unwrap_or("")
        );
        self.message(msg).instrument(span).await
    }

    async fn message(&self, msg: Inbound) -> Result<Handled, EngineError> {
        let inner = &self.inner;
        if let Some(event_id) = &msg.event_id {
            let platform = msg.conversation.platform.as_str();
            if !inner.db.first_delivery(platform, event_id).await? {
                tracing::debug!(platform, event_id, "duplicate event ignored");
                return Ok(Handled::Duplicate);
            }
        }
        let conv = &msg.conversation;
        let (catalog, parser) = inner.parser.current();
        // Asked only where it matters: a rules parse, not worth doing for a
        // message a follow-up or a handoff takes.
        let asks_llm = || matches!(&inner.understander, Some(u) if u.will_ask(&parser, &msg.text));
        // Taken again after a crash cut its handling off: the request it
        // stored is found (its card sits in this very thread, so the
        // message would otherwise read as a follow-up to it).
        if let Some(handled) = inner.requests.stored_before(asks_llm).await? {
            return Ok(handled);
        }
        // A reply in the platform team's thread under a handed-off
        // question is the docs flow's (the relay), whatever it says.
        if let Some(question) = inner
            .db
            .threads()
            .handoff_of(conv.platform, &conv.channel, conv.thread.as_deref())
            .await?
        {
            return Ok(inner.office_hours.reply_in_handoff(&msg, &question).await?);
        }
        if let Some(handled) = inner
            .requests
            .follow_up_in_thread(&msg, &catalog, &parser)
            .await?
        {
            return Ok(handled);
        }
        // When the LLM will be asked (seconds on a small model), a
        // placeholder goes out at once; whatever the answer is replaces it.
        let placeholder = if asks_llm() {
            Some(inner.send.placeholder(conv).await?)
        } else {
            None
        };
        let placeholder = placeholder.as_ref();
        let understood = match &inner.understander {
            Some(u) => u.understand(&parser, &catalog, &msg.text).await,
            None => Understanding::by_rules(&parser, &msg.text),
        };
        tracing::debug!(
            path = understood.path.as_str(),
            latency_ms = understood.latency.as_millis() as u64,
            llm_calls = understood.llm_calls,
            action = %understood.action.kind(),
            "understood a message"
        );
        let in_thread = conv.thread.is_some();
        if let Action::Scorecard { target } = &understood.action {
            if inner.answers.may_read(&msg.user) {
                let reply = inner.scorecards.answer(target).await;
                inner.send.reply_over(conv, placeholder, &reply).await?;
                return Ok(Handled::Replied);
            }
        }
        match inner
            .answers
            .answer(
                &msg.user,
                &msg.text,
                in_thread,
                &understood.action,
                &catalog,
            )
            .await
        {
            Some(Answer::Reply(reply)) => {
                inner.send.reply_over(conv, placeholder, &reply).await?;
                Ok(Handled::Replied)
            }
            Some(Answer::Silence) => {
                if let Some(p) = placeholder {
                    inner
                        .send
                        .reply_over(conv, Some(p), &crate::chat::messages::nothing_asked())
                        .await?;
                }
                Ok(Handled::Ignored)
            }
            Some(Answer::Ask(question)) => {
                // The answer is a card of the docs flow's own, with its
                // buttons; the placeholder points to it.
                if let Some(p) = placeholder {
                    inner
                        .send
                        .reply_over(conv, Some(p), &crate::chat::messages::reading_docs())
                        .await?;
                }
                // This question's snapshot: a refresh swapping in new docs
                // meanwhile does not change what it reads.
                let docs = inner.docs.as_ref().and_then(|d| d.current());
                let llm = inner.docs_llm.as_deref();
                Ok(inner
                    .office_hours
                    .ask(&msg.user, conv, &question, docs.as_deref(), llm)
                    .await?)
            }
            None => Ok(inner
                .requests
                .propose(
                    &msg,
                    understood.action.clone(),
                    Some(&understood),
                    &catalog,
                    placeholder,
                )
                .await?),
        }
    }

    /// A button press: a digest's goes to the scorecards flow, a docs
    /// answer's to the docs flow, any other to the request flow.
    pub async fn handle_button(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        payload: &str,
    ) -> Result<(), EngineError> {
        self.handle_button_with(user, conv, payload, None).await
    }

    /// A press with what the user wrote for it: the reason `Won't fix`
    /// needs (from a modal, or the console's `/press Won't fix: reason`).
    pub async fn handle_button_with(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        payload: &str,
        reason: Option<&str>,
    ) -> Result<(), EngineError> {
        use tracing::Instrument;
        // A payload holds ids only (never an action), so it may be logged.
        let span =
            tracing::info_span!("press", platform = conv.platform.as_str(), payload = ?payload);
        self.press(user, conv, payload, reason)
            .instrument(span)
            .await
    }

    async fn press(
        &self,
        user: &ChatUser,
        conv: &Conversation,
        payload: &str,
        reason: Option<&str>,
    ) -> Result<(), EngineError> {
        if let Ok(p) = crate::chat::ButtonPayload::parse(payload) {
            if p.op.is_nag() {
                return Ok(self
                    .inner
                    .scorecards
                    .press(user, Some(conv), &p, reason)
                    .await?);
            }
            if p.op.is_docs() {
                return Ok(self.inner.office_hours.press(user, conv, &p).await?);
            }
        }
        Ok(self
            .inner
            .requests
            .handle_button(user, conv, payload)
            .await?)
    }

    /// A press that comes with its reason (a submitted reason form): the
    /// request flow's, checked exactly as a press. `conv`: where it was
    /// made, when the platform says.
    pub async fn handle_reasoned(
        &self,
        user: &ChatUser,
        conv: Option<&Conversation>,
        payload: &str,
        reason: Reason,
    ) -> Result<(), EngineError> {
        if let Ok(p) = crate::chat::ButtonPayload::parse(payload) {
            if p.op.is_nag() {
                return Ok(self
                    .inner
                    .scorecards
                    .press(user, conv, &p, Some(reason.as_str()))
                    .await?);
            }
        }
        Ok(self
            .inner
            .requests
            .handle_reasoned(user, conv, payload, reason)
            .await?)
    }

    /// Queues an approved request as a durable job.
    pub fn execute(&self, id: String) {
        self.inner.requests.execute(id)
    }

    /// Starts this process's executor workers (once). `App::start` calls it;
    /// `execute` and `recover` do too, so an engine always has workers.
    pub fn start_workers(&self) {
        self.inner.requests.start_workers()
    }

    /// The executor (for shutdown, and for tests that simulate a crash).
    pub fn executor(&self) -> &crate::requests::Executor {
        self.inner.requests.executor()
    }

    /// At start: picks up what a previous run left half-way.
    pub async fn recover(&self) -> Result<(), EngineError> {
        Ok(self.inner.requests.recover().await?)
    }

    /// Expires what nobody acted on.
    pub async fn sweep(&self) -> Result<(), EngineError> {
        Ok(self.inner.requests.sweep().await?)
    }

    /// Starts every leased scheduler this replica runs (`holder`: its id
    /// in the leases): the expiry sweeper (every `sweep_every`), the
    /// scorecard refresh (every `refresh_every`), the nag scheduler (with
    /// `[scorecards.nags]`), the office-hours agenda (with
    /// `agenda_schedule`), the report digest (with `report.digest_schedule`)
    /// and `retention`. Each runs on one replica at a
    /// time; [`Schedulers::stop`] stops them and lets their leases go.
    pub fn spawn_schedulers(
        &self,
        holder: &str,
        sweep_every: Duration,
        refresh_every: Duration,
        retention: &Retention,
    ) -> Schedulers {
        let all = Schedulers::default();
        all.add(self.inner.requests.spawn_sweeper(holder, sweep_every));
        all.add(self.scorecards().spawn_refresh(holder, refresh_every));
        if let Some(s) = self.scorecards().spawn_nag_scheduler(holder) {
            all.add(s);
        }
        if let Some(s) = self.office_hours().spawn_agenda_scheduler(holder) {
            all.add(s);
        }
        if let Some(s) = self.report().spawn_scheduler(holder) {
            all.add(s);
        }
        all.add(retention.spawn());
        all
    }

    /// Runs work an adapter acknowledged before doing it, counted as running
    /// so [`Engine::wait_idle`] waits for it too. Refuses (before the adapter
    /// acknowledges) when `max_in_flight` events are already being handled.
    pub fn track<F>(&self, work: F) -> Result<(), Overloaded>
    where
        F: std::future::Future<Output = Result<(), EngineError>> + Send + 'static,
    {
        self.inner.tasks.admit("chat event", work)
    }

    /// Acknowledged events (and queueing work) being handled right now.
    pub fn in_flight(&self) -> usize {
        self.inner.tasks.count()
    }

    /// Whether nothing is running, no job is queued or running (a retry
    /// waiting for its backoff counts), and nothing waits to be sent.
    pub async fn is_idle(&self) -> Result<bool, EngineError> {
        Ok(self.inner.tasks.count() == 0
            && self.inner.db.jobs().live_count().await? == 0
            && self.inner.db.outbox().pending_count().await? == 0)
    }

    /// Waits until idle, at most `limit`; true when it got there. It looks
    /// again when a piece of work ends or the dispatcher sends, not on a
    /// timer (`paver chat` in a pipe waits for each line this way); what
    /// ends unannounced (a job whose last message was already out, a retry
    /// coming due) is seen within [`IDLE_RECHECK`].
    pub async fn wait_idle(&self, limit: Duration) -> Result<bool, EngineError> {
        let deadline = tokio::time::Instant::now() + limit;
        let (ended, sent) = (self.inner.tasks.ended(), self.inner.sent.clone());
        loop {
            // Listening before looking: an end between the look and the
            // wait is not missed.
            let (a, b) = (ended.notified(), sent.notified());
            tokio::pin!(a, b);
            a.as_mut().enable();
            b.as_mut().enable();
            if self.is_idle().await? {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let nap = (deadline - now).min(IDLE_RECHECK);
            tokio::select! {
                _ = a => {}
                _ = b => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }
}
