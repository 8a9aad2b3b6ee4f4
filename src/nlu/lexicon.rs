//! The words the rules parser knows, grouped by what they signal.
//!
//! Everything here is vocabulary, not examples: synonyms from the action
//! contract, inflections, and the phrasal verbs people use in chat.

use crate::domain::{ActionKind, Environment, ResourceKind};

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
    /// "start", "kick off": a new service when the rest says so, else nothing.
    Start,
}

impl Cue {
    /// Weak cues yield to any strong cue in the same message.
    pub fn is_weak(self) -> bool {
        matches!(self, Cue::Need | Cue::Help | Cue::Status | Cue::Start)
    }

    /// The action a cue argues for (the one a verb usually means; the
    /// parser's builders still refine it from the cue's object).
    pub fn reading(self) -> Option<ActionKind> {
        Some(match self {
            Cue::Create | Cue::Need => ActionKind::CreateEnvironment,
            Cue::Destroy => ActionKind::DestroyEnvironment,
            Cue::Add => ActionKind::AddResource,
            Cue::Deploy => ActionKind::Deploy,
            Cue::Rollback => ActionKind::Rollback,
            Cue::Promote | Cue::Move => ActionKind::Promote,
            Cue::Scale | Cue::Bump => ActionKind::Scale,
            Cue::Restart => ActionKind::Restart,
            Cue::Scaffold | Cue::Start => ActionKind::ScaffoldService,
            Cue::Status => ActionKind::Status,
            Cue::Owner => ActionKind::WhoOwns,
            Cue::Scorecard => ActionKind::Scorecard,
            Cue::Help => ActionKind::Help,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cue::Create => "create",
            Cue::Destroy => "destroy",
            Cue::Add => "add",
            Cue::Deploy => "deploy",
            Cue::Rollback => "rollback",
            Cue::Promote => "promote",
            Cue::Move => "move",
            Cue::Scale => "scale",
            Cue::Bump => "bump",
            Cue::Restart => "restart",
            Cue::Scaffold => "scaffold",
            Cue::Status => "status",
            Cue::Owner => "owner",
            Cue::Scorecard => "scorecard",
            Cue::Help => "help",
            Cue::Need => "need",
            Cue::Start => "start",
        }
    }
}

/// A verb whose particle may stand a few words after it ("roll it back",
/// "hook a mariadb up to …", "tear the old env down"): the cue the pair
/// means, keyed by the particle.
pub fn separable(verb: &str, particle: &str) -> Option<Cue> {
    Some(match (verb, particle) {
        (
            "roll" | "rolling" | "rolled" | "take" | "taking" | "took" | "put" | "putting"
            | "bring" | "brought" | "go" | "went" | "set",
            "back",
        ) => Cue::Rollback,
        ("hook" | "wire", "up") => Cue::Add,
        ("spin" | "fire" | "stand" | "set", "up") => Cue::Create,
        ("tear" | "take" | "shut" | "spin" | "wind", "down") => Cue::Destroy,
        ("clean" | "cleaning", "up") => Cue::Destroy,
        _ => return None,
    })
}

/// Verbs, nouns and modals a misspelt word is compared with: the closed
/// vocabulary of requests (a typo'd cue counts, with less weight).
const TYPO_TARGETS: [(&str, Cue); 22] = [
    ("create", Cue::Create),
    ("provision", Cue::Create),
    ("destroy", Cue::Destroy),
    ("delete", Cue::Destroy),
    ("remove", Cue::Destroy),
    ("decommission", Cue::Destroy),
    ("attach", Cue::Add),
    ("deploy", Cue::Deploy),
    ("redeploy", Cue::Deploy),
    ("release", Cue::Deploy),
    ("rollback", Cue::Rollback),
    ("revert", Cue::Rollback),
    ("promote", Cue::Promote),
    ("scale", Cue::Scale),
    ("restart", Cue::Restart),
    ("reboot", Cue::Restart),
    ("scaffold", Cue::Scaffold),
    ("generate", Cue::Scaffold),
    ("bootstrap", Cue::Scaffold),
    ("scorecard", Cue::Scorecard),
    ("status", Cue::Status),
    ("owner", Cue::Owner),
];

/// Real words one edit away from a request verb: never typos of it.
fn is_near_miss_word(w: &str) -> bool {
    matches!(
        w,
        "stale"
            | "scald"
            | "scalp"
            | "scaly"
            | "sable"
            | "relate"
            | "remote"
            | "revers"
            | "resort"
            | "restore"
            | "depot"
            | "delta"
            | "deletes"
            | "deplete"
            | "states"
            | "statue"
            | "stature"
            | "owned"
            | "owners"
            | "ownder"
            | "create"
            | "crater"
            | "created"
            | "release"
            | "releases"
            | "revery"
            | "reboots"
            | "scales"
            | "scaled"
            | "rebook"
            | "remover"
            | "removed"
            | "deploys"
            | "revenge"
            | "revest"
    )
}

/// A cue for a word that is not in the vocabulary but one edit (a
/// transposition, a letter missing, extra or wrong) from one of its verbs.
/// Short words are too easily some other word, so only 5 letters and up;
/// the first letter must agree (typos rarely hit it).
pub fn typo_cue(w: &str) -> Option<Cue> {
    if w.len() < 5 || is_near_miss_word(w) || !w.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let first = w.as_bytes()[0];
    TYPO_TARGETS.iter().find_map(|(target, cue)| {
        // An inflection ("rollbacks", "restarts") is a word, not a typo:
        // the lexicon lists the ones that ask for something.
        let inflected = w
            .strip_prefix(target)
            .is_some_and(|rest| matches!(rest, "s" | "d" | "r"));
        (!inflected
            && target.as_bytes()[0] == first
            && target.len().abs_diff(w.len()) <= 1
            && strsim::osa_distance(w, target) == 1)
            .then_some(*cue)
    })
}

/// An environment word misspelt by one edit ("stagign", "prodcution").
pub fn typo_environment(w: &str) -> Option<Environment> {
    if w.len() < 6 || !w.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    [
        ("staging", Environment::Staging),
        ("production", Environment::Production),
        ("preview", Environment::Preview),
        ("development", Environment::Dev),
    ]
    .into_iter()
    .find_map(|(target, env)| {
        (target.as_bytes()[0] == w.as_bytes()[0]
            && target.len().abs_diff(w.len()) <= 1
            && strsim::osa_distance(w, target) == 1)
            .then_some(env)
    })
}

/// Environment synonyms that are everyday English too ("to test my
/// change", "at this stage", "go live"): they name an environment only in
/// an environment's place.
pub fn is_ambiguous_env_word(w: &str) -> bool {
    matches!(w, "test" | "stage" | "live" | "temp" | "temporary")
}

/// Words that make an action word the topic ("the deploy", "yesterday's
/// release", "thanks for restarting"), not the request.
pub fn is_determiner(w: &str) -> bool {
    matches!(
        w,
        "the"
            | "a"
            | "an"
            | "this"
            | "that"
            | "these"
            | "those"
            | "my"
            | "our"
            | "your"
            | "their"
            | "its"
            | "his"
            | "her"
            | "'s"
            | "yesterday"
            | "today"
            | "tonight"
            | "for"
            | "of"
            | "after"
            | "since"
            | "before"
            | "about"
            | "during"
            | "until"
    )
}

/// Adjectives and modifiers between a determiner and an action noun
/// ("the last prod deploy", "the new release").
pub fn is_modifier(w: &str) -> bool {
    matches!(
        w,
        "new"
            | "last"
            | "latest"
            | "recent"
            | "previous"
            | "bad"
            | "broken"
            | "failed"
            | "big"
            | "first"
            | "second"
            | "whole"
            | "current"
            | "morning"
            | "nightly"
            | "friday"
            | "weekly"
            | "hotfix"
    )
}

/// Words that take an action word back ("no rollback", "don't deploy").
pub fn is_negation(w: &str) -> bool {
    matches!(w, "no" | "not" | "never" | "without" | "nor" | "nvm")
}

/// Words saying the release named is the bad one ("2.4.0 is broken").
pub fn is_trouble_word(w: &str) -> bool {
    matches!(
        w,
        "broken"
            | "broke"
            | "breaks"
            | "breaking"
            | "bad"
            | "buggy"
            | "failing"
            | "failed"
            | "fails"
            | "leaking"
            | "leaks"
            | "crashing"
            | "crashes"
            | "crashed"
            | "fire"
            | "wrong"
            | "issue"
            | "issues"
            | "problem"
            | "problems"
            | "errors"
            | "erroring"
            | "throwing"
            | "500s"
            | "5xx"
            | "regression"
            | "borked"
            | "hosed"
            | "outage"
            | "down"
    )
}

/// Thanks and praise: a message holding these and no request verb is
/// talk about what happened, not a request.
pub fn is_gratitude(w: &str) -> bool {
    matches!(
        w,
        "thanks"
            | "thank"
            | "thx"
            | "ty"
            | "tysm"
            | "cheers"
            | "kudos"
            | "congrats"
            | "nice"
            | "great"
            | "awesome"
            | "worked"
            | "works"
            | "saved"
            | "smoothly"
            | "smooth"
            | "job"
            | "haha"
            | "lol"
            | "appreciated"
    )
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
        ("roll" | "rolling" | "rolled" | "go" | "back", "back" | "out")
            if next == "back" || w == "back" =>
        {
            Some(Cue::Rollback)
        }
        ("roll" | "rolling", "out") => Some(Cue::Deploy),
        ("scale" | "scaling", "up" | "down" | "out" | "in") => Some(Cue::Scale),
        ("hook" | "wire", "up") => Some(Cue::Add),
        ("kick" | "kicking", "off") => Some(Cue::Start),
        ("back", "to") if looks_like_target(next2) => Some(Cue::Rollback),
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
    let single = match w {
        "create" | "creating" | "created" | "provision" | "provisioning" | "provisioned"
        | "setup" | "spinup" | "make" | "launch" | "new" | "prepare" | "allocate"
        | "instantiate" => Cue::Create,
        "destroy" | "destroying" | "destroyed" | "delete" | "deleting" | "deleted" | "remove"
        | "removing" | "removed" | "teardown" | "kill" | "nuke" | "drop" | "decommission"
        | "deprovision" | "cleanup" | "wipe" | "terminate" | "trash" | "scrap" | "dispose" => {
            Cue::Destroy
        }
        "add" | "adding" | "added" | "attach" | "attaching" | "attached" | "plug" | "connect"
        | "enable" | "include" => Cue::Add,
        "deploy" | "deploying" | "deploys" | "redeploy" | "ship" | "shipping" | "release"
        | "releasing" | "push" | "pushing" | "rollout" | "upgrade" | "update" | "install"
        | "deployed" | "redeployed" | "shipped" | "released" | "upgraded" => Cue::Deploy,
        "rollback" | "roll-back" | "revert" | "reverting" | "reverted" | "undo" | "downgrade"
        | "restore" | "yank" | "unship" | "unrelease" | "unroll" | "reverse" => Cue::Rollback,
        "promote" | "promoting" | "promoted" | "promotion" | "graduate" => Cue::Promote,
        "move" | "copy" => Cue::Move,
        "scale" | "scaling" | "scaled" | "resize" | "replicas" | "replica" => Cue::Scale,
        "bump" | "increase" | "decrease" | "reduce" => Cue::Bump,
        "restart" | "restarting" | "restarted" | "reboot" | "rebooted" | "bounce" | "bounced"
        | "recycle" | "cycle" | "kick" | "reload" => Cue::Restart,
        "scaffold" | "scaffolding" | "bootstrap" | "generate" => Cue::Scaffold,
        "status" | "health" | "healthy" | "unhealthy" | "show" | "check" | "describe" | "info"
        | "details" | "state" => Cue::Status,
        "owns" | "owner" | "owners" | "ownership" | "maintains" | "maintainer" | "maintainers"
        | "whose" | "own" => Cue::Owner,
        "scorecard" | "scorecards" | "score" | "scores" | "scoring" | "checks" | "maturity"
        | "compliance" | "compliant" | "standards" | "readiness" => Cue::Scorecard,
        "help" | "halp" | "commands" | "usage" => Cue::Help,
        "need" | "needs" | "want" | "wants" | "give" | "gimme" | "get" | "like" => Cue::Need,
        "start" | "starting" | "begin" => Cue::Start,
        _ => return None,
    };
    Some((single, 1))
}

/// What "back to" may be followed by when it means a rollback: a version
/// or the release before.
fn looks_like_target(w: &str) -> bool {
    matches!(
        w,
        "the" | "previous" | "last" | "old" | "older" | "before" | "what" | "how" | "prior"
    ) || w
        .trim_start_matches('v')
        .starts_with(|c: char| c.is_ascii_digit())
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
            | "svc"
            | "svcs"
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
