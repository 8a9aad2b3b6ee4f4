//! Read-only answers: help, who owns a service, its status, what runs in
//! an environment, a scorecard, a question, a clarifying question, a word
//! of small talk. Nothing is stored and nothing changes; the answer is one
//! reply.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::chat::{messages, ChatUser, Message};
use crate::domain::{Action, Environment, Field};
use crate::drivers::Driver;
use crate::nlu::chatter;
use crate::policy::UnknownUsers;

/// The read-only flow's context. Cheap to clone.
#[derive(Clone)]
pub struct Answers {
    driver: Arc<dyn Driver>,
    unknown_users: UnknownUsers,
}

/// What to do with a message that is not a request.
#[derive(Debug)]
pub enum Answer {
    Reply(Message),
    /// Nothing to say (chatter in a thread, a message for someone else).
    Silence,
    /// A question for the docs (office hours).
    Ask(String),
}

impl Answers {
    pub fn new(driver: Arc<dyn Driver>, unknown_users: UnknownUsers) -> Self {
        Answers {
            driver,
            unknown_users,
        }
    }

    /// The answer to `action` asked by `user` in `text`, or `None` when the
    /// action is not read-only (a request: the request flow takes it).
    pub async fn answer(
        &self,
        user: &ChatUser,
        text: &str,
        in_thread: bool,
        action: &Action,
        catalog: &Catalog,
    ) -> Option<Answer> {
        // "what's deployed in staging?": no service, so no `status` in the
        // contract's sense, but a fair question with an answer.
        if matches!(action, Action::Ask { .. })
            || matches!(action, Action::Clarify { missing, .. } if missing.contains(&Field::Service))
        {
            if let Some(env) = chatter::environment_overview(catalog, text) {
                // Status data, so for people the catalog knows (see below).
                return Some(Answer::Reply(if !self.may_read(user) {
                    messages::unknown_user_reads(&user.id, catalog)
                } else {
                    self.environment_overview(catalog, env).await
                }));
            }
        }
        let reply = match action {
            // Greetings and thanks addressed to Paver get one line; the
            // same words in a request's thread are left alone.
            Action::Nothing => match chatter::small_talk(text) {
                Some(talk) if !in_thread => messages::small_talk(talk, catalog),
                _ => return Some(Answer::Silence),
            },
            Action::Help => messages::help(),
            // The docs flow's (the engine routes it there).
            Action::Ask { question } => return Some(Answer::Ask(question.clone())),
            Action::Clarify {
                missing,
                candidates,
                intent,
            } if candidates.is_empty() && missing.contains(&Field::Service) => {
                let near = chatter::closest_services(catalog, text, 3);
                messages::clarify(missing, &near, *intent)
            }
            Action::Clarify {
                missing,
                candidates,
                intent,
            } => messages::clarify(missing, candidates, *intent),
            // Ownership and status are for people the catalog knows, unless
            // `policy.unknown_users = "read"`.
            Action::WhoOwns { .. } | Action::Scorecard { .. } | Action::Status { .. }
                if !self.may_read(user) =>
            {
                messages::unknown_user_reads(&user.id, catalog)
            }
            Action::WhoOwns { service } => messages::who_owns(catalog, service),
            Action::Status {
                service,
                environment,
            } => messages::status(service, self.driver.status(service, *environment).await),
            _ => return None,
        };
        Some(Answer::Reply(reply))
    }

    /// Ownership and status data are for people the catalog knows, unless
    /// `policy.unknown_users = "read"`.
    pub fn may_read(&self, user: &ChatUser) -> bool {
        user.catalog.is_some() || self.unknown_users == UnknownUsers::Read
    }

    /// What runs in one environment, service by service (at most 50, in
    /// catalog order, read concurrently from the driver).
    async fn environment_overview(&self, catalog: &Catalog, env: Environment) -> Message {
        let services: Vec<_> = catalog
            .components()
            .take(50)
            .map(|c| c.name.clone())
            .collect();
        let reads = services.iter().map(|s| self.driver.status(s, Some(env)));
        let results = futures_util::future::join_all(reads).await;
        messages::environment_overview(env, services.into_iter().zip(results).collect())
    }
}
