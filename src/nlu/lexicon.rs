//! The words the rules parser knows, grouped by what they signal.
//!
//! Everything here is vocabulary, not examples: synonyms from the action
//! contract, inflections, and the phrasal verbs people use in chat.

use crate::domain::{Environment, ResourceKind};

/// What a verb or keyword says the writer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    Create,
    Destroy,
    Add,
    Deploy,
    Rollback,
    Promote,
    /// "move"/"copy": a promotion when environments are named on both sides.
    Move,
    Scale,
    /// "bump": a scale with a count, a deploy with a version.
    Bump,
    Restart,
    Scaffold,
    Status,
    Owner,
    Scorecard,
    Help,
    /// "need", "want", "give": a request whose kind its object decides.
    Need,
}

impl Cue {
    /// Weak cues yield to any strong cue in the same message.
    pub fn is_weak(self) -> bool {
        matches!(self, Cue::Need | Cue::Help | Cue::Status)
    }
}

/// The cue starting at `words[i]`, and how many words it spans.
pub fn cue_at(words: &[&str], i: usize) -> Option<(Cue, usize)> {
    let w = words[i];
    let next = words.get(i + 1).copied().unwrap_or("");
    let next2 = words.get(i + 2).copied().unwrap_or("");
    // Phrasal verbs first: their particle changes the meaning.
    let phrasal = match (w, next) {
        ("spin" | "spinning" | "set" | "setting" | "stand" | "bring" | "fire" | "boot", "up") => {
            Some(Cue::Create)
        }
        ("tear" | "tearing" | "take" | "shut" | "spin" | "wind" | "bring", "down") => {
            Some(Cue::Destroy)
        }
        ("clean" | "cleaning", "up") => Some(Cue::Destroy),
        ("get", "rid") => Some(Cue::Destroy),
        ("done" | "finished", "with") => Some(Cue::Destroy),
        ("roll" | "rolling" | "go" | "back", "back" | "out") if next == "back" || w == "back" => {
            Some(Cue::Rollback)
        }
        ("roll" | "rolling", "out") => Some(Cue::Deploy),
        ("scale" | "scaling", "up" | "down" | "out" | "in") => Some(Cue::Scale),
        ("hook" | "wire", "up") => Some(Cue::Add),
        ("talk" | "speak" | "reach", "to") => Some(Cue::Owner),
        ("responsible", "for") => Some(Cue::Owner),
        ("on", "call") => Some(Cue::Owner),
        ("what", "can") if next2 == "you" => Some(Cue::Help),
        // "is it production ready?": the scorecard's question, not a status
        // of production.
        ("production" | "prod", "ready" | "readiness") => Some(Cue::Scorecard),
        _ => None,
    };
    if let Some(c) = phrasal {
        return Some((c, 2));
    }
    let single =
        match w {
            "create" | "creating" | "provision" | "provisioning" | "setup" | "spinup" | "make"
            | "launch" | "new" | "prepare" | "allocate" | "instantiate" => Cue::Create,
            "destroy" | "destroying" | "delete" | "deleting" | "remove" | "removing"
            | "teardown" | "kill" | "nuke" | "drop" | "decommission" | "deprovision"
            | "cleanup" | "wipe" | "terminate" | "trash" | "scrap" | "dispose" => Cue::Destroy,
            "add" | "adding" | "attach" | "attaching" | "plug" | "connect" | "enable"
            | "include" => Cue::Add,
            "deploy" | "deploying" | "deploys" | "redeploy" | "ship" | "shipping" | "release"
            | "releasing" | "push" | "pushing" | "rollout" | "upgrade" | "update" | "install" => {
                Cue::Deploy
            }
            "rollback" | "roll-back" | "revert" | "reverting" | "undo" | "downgrade"
            | "restore" => Cue::Rollback,
            "promote" | "promoting" | "promotion" | "graduate" => Cue::Promote,
            "move" | "copy" => Cue::Move,
            "scale" | "scaling" | "resize" | "replicas" | "replica" => Cue::Scale,
            "bump" | "increase" | "decrease" | "reduce" => Cue::Bump,
            "restart" | "restarting" | "reboot" | "bounce" | "recycle" | "cycle" | "kick"
            | "reload" => Cue::Restart,
            "scaffold" | "scaffolding" | "bootstrap" | "generate" => Cue::Scaffold,
            "status" | "health" | "healthy" | "unhealthy" | "show" | "check" | "describe"
            | "info" | "details" | "state" => Cue::Status,
            "owns" | "owner" | "owners" | "ownership" | "maintains" | "maintainer"
            | "maintainers" | "whose" => Cue::Owner,
            "scorecard" | "scorecards" | "score" | "scores" | "scoring" | "checks" | "maturity"
            | "compliance" | "compliant" | "standards" | "readiness" => Cue::Scorecard,
            "help" | "commands" | "usage" => Cue::Help,
            "need" | "needs" | "want" | "wants" | "give" | "get" | "like" => Cue::Need,
            _ => return None,
        };
    Some((single, 1))
}

/// Words that open a question (after greetings and fillers).
pub fn is_interrogative(w: &str) -> bool {
    matches!(
        w,
        "what"
            | "whats"
            | "which"
            | "who"
            | "whom"
            | "whose"
            | "how"
            | "hows"
            | "is"
            | "are"
            | "does"
            | "do"
            | "did"
            | "why"
            | "where"
            | "when"
            | "has"
            | "have"
            | "was"
            | "were"
            | "any"
            | "anyone"
            | "should"
    )
}

/// Greetings, fillers and politeness that carry no request.
pub fn is_filler(w: &str) -> bool {
    matches!(
        w,
        "hey"
            | "hi"
            | "hello"
            | "yo"
            | "hiya"
            | "howdy"
            | "bot"
            | "paver"
            | "please"
            | "pls"
            | "plz"
            | "so"
            | "um"
            | "uh"
            | "ok"
            | "okay"
            | "quick"
            | "question"
            | "q"
            | "folks"
            | "team"
            | "all"
            | "there"
            | "again"
            | "also"
            | "and"
            | "btw"
            | "sorry"
    )
}

/// Chit-chat: a message made only of these (and fillers) is not a request.
pub fn is_chatter(w: &str) -> bool {
    matches!(
        w,
        "thanks"
            | "thank"
            | "thx"
            | "ty"
            | "tysm"
            | "cheers"
            | "you"
            | "u"
            | "lol"
            | "lmao"
            | "haha"
            | "hah"
            | "heh"
            | "nice"
            | "cool"
            | "great"
            | "awesome"
            | "perfect"
            | "good"
            | "morning"
            | "afternoon"
            | "evening"
            | "night"
            | "day"
            | "gm"
            | "gn"
            | "bye"
            | "cya"
            | "later"
            | "much"
            | "very"
            | "a"
            | "lot"
            | "ack"
            | "yes"
            | "no"
            | "yep"
            | "nope"
            | "sure"
            | "got"
            | "it"
            | "np"
            | "kk"
            | "k"
            | "wow"
            | "love"
            | "this"
            | "the"
            | "is"
            | "that"
            | "sounds"
            | "works"
            | "worked"
            | "done"
            | "+1"
            | "1"
            | "ah"
            | "oh"
            | "i"
            | "see"
            | "everyone"
            | "guys"
            | "y'all"
            | "appreciate"
            | "appreciated"
            | "amazing"
            | "happy"
            | "friday"
            | "monday"
            | "welcome"
            | "'s"
            | "am"
            | "are"
    )
}

/// Words common enough that they never name a service by prefix or typo.
pub fn is_common(w: &str) -> bool {
    is_filler(w)
        || is_chatter(w)
        || is_interrogative(w)
        || Environment::from_word(w).is_some()
        || ResourceKind::from_word(w).is_some()
        || is_env_noun(w)
        || is_service_noun(w)
        || is_replica_noun(w)
        || matches!(
            w,
            "a" | "an"
                | "the"
                | "my"
                | "our"
                | "your"
                | "their"
                | "me"
                | "us"
                | "we"
                | "they"
                | "them"
                | "it"
                | "its"
                | "to"
                | "for"
                | "of"
                | "in"
                | "on"
                | "at"
                | "with"
                | "without"
                | "from"
                | "into"
                | "onto"
                | "by"
                | "about"
                | "up"
                | "down"
                | "out"
                | "off"
                | "or"
                | "not"
                | "can"
                | "could"
                | "would"
                | "will"
                | "be"
                | "been"
                | "being"
                | "then"
                | "now"
                | "just"
                | "some"
                | "one"
                | "new"
                | "latest"
                | "last"
                | "previous"
                | "version"
                | "database"
                | "db"
                | "topic"
                | "queue"
                | "storage"
                | "called"
                | "named"
                | "name"
                | "doing"
                | "running"
                | "deployed"
                | "still"
                | "here"
                | "there"
                | "back"
                | "yesterday"
                | "today"
                | "tomorrow"
                | "copies"
                | "more"
                | "less"
                | "too"
                | "every"
                | "current"
                | "again"
        )
        || cue_at(&[w], 0).is_some()
}

/// Nouns meaning "an environment".
pub fn is_env_noun(w: &str) -> bool {
    matches!(
        w,
        "env" | "envs" | "environment" | "environments" | "namespace" | "stack" | "sandbox"
    )
}

/// Nouns meaning "a service" in a scaffolding request.
pub fn is_service_noun(w: &str) -> bool {
    matches!(
        w,
        "service"
            | "services"
            | "microservice"
            | "microservices"
            | "app"
            | "application"
            | "frontend"
            | "front-end"
            | "backend"
            | "api"
            | "pipeline"
            | "worker"
            | "repo"
            | "repository"
            | "project"
            | "component"
            | "lambda"
            | "job"
            | "library"
            | "website"
            | "site"
    )
}

/// Nouns that count replicas.
pub fn is_replica_noun(w: &str) -> bool {
    matches!(
        w,
        "replicas"
            | "replica"
            | "instances"
            | "instance"
            | "pods"
            | "pod"
            | "copies"
            | "containers"
            | "nodes"
            | "x"
    )
}

/// Generic resource nouns: they name a resource only when no specific type
/// word stands right before them ("a Postgres DB" is one resource).
pub fn generic_resource(w: &str) -> Option<ResourceKind> {
    Some(match w {
        "database" | "db" | "databases" | "sql" => ResourceKind::Postgres,
        "topic" | "topics" | "stream" => ResourceKind::Kafka,
        "queue" | "queues" | "broker" => ResourceKind::Rabbitmq,
        _ => return None,
    })
}

/// Multi-word resource names.
pub fn resource_phrase(w: &str, next: &str) -> Option<ResourceKind> {
    Some(match (w, next) {
        ("object" | "blob", "storage" | "store") => ResourceKind::S3,
        ("elastic", "search") => ResourceKind::Opensearch,
        ("message", "queue" | "broker") => ResourceKind::Rabbitmq,
        ("mongo", "db") => ResourceKind::Mongodb,
        ("maria", "db") => ResourceKind::Mysql,
        _ => return None,
    })
}

/// Environment phrases beyond single synonyms: "pr preview", "review app",
/// "pull request", `pr-123`.
pub fn environment_at(words: &[&str], i: usize) -> Option<(Environment, usize)> {
    let w = words[i];
    let next = words.get(i + 1).copied().unwrap_or("");
    match (w, next) {
        ("review", "app" | "apps" | "env" | "environment") => {
            return Some((Environment::Preview, 2))
        }
        ("pull", "request") => return Some((Environment::Preview, 2)),
        ("pr", _) => return Some((Environment::Preview, 1)),
        _ => {}
    }
    if let Some(rest) = w.strip_prefix("pr-") {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Some((Environment::Preview, 1));
        }
    }
    Environment::from_word(w).map(|e| (e, 1))
}

/// Small numbers written as words.
pub fn number_word(w: &str) -> Option<u32> {
    Some(match w {
        "zero" | "none" => 0,
        "one" | "single" => 1,
        "two" | "couple" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" | "dozen" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "hundred" => 100,
        _ => return None,
    })
}

/// Language and stack words, mapped to one canonical word so that a user's
/// "golang" meets a template tagged "go".
pub fn canonical_stack_word(w: &str) -> &str {
    match w {
        "golang" => "go",
        "nodejs" | "node.js" | "node" | "javascript" | "js" | "express" => "node",
        "py" | "python3" | "django" | "flask" | "fastapi" => "python",
        "rs" | "rustlang" => "rust",
        "ts" | "typescript" => "typescript",
        "react" | "reactjs" | "nextjs" | "next.js" => "react",
        "front-end" | "frontend" | "ui" | "spa" | "web" | "webapp" => "frontend",
        "kotlin" | "spring" | "jvm" => "java",
        "etl" | "pipelines" => "pipeline",
        other => other,
    }
}
