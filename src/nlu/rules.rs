//! The rules parser: chat text in, a typed [`Action`] (or `clarify`) out,
//! with no LLM, in microseconds.
//!
//! The text is cleaned of chat markup and tokenized; catalog names are found
//! first (so a service called `shipping-service` is never read as the verb
//! "ship"); then the first decisive cue picks the intent, its clause bounds
//! the entities, and the action's fields are extracted from that clause.

use super::index::{CatalogIndex, ServiceMatch};
use super::lexicon::{
    cue_at, environment_at, generic_resource, is_chatter, is_common, is_env_noun, is_filler,
    is_interrogative, is_replica_noun, is_service_noun, number_word, resource_phrase, Cue,
};
use super::markup;
use super::tokens::{tokenize, Token};
use crate::catalog::Catalog;
use crate::domain::{
    Action, ActionKind, Environment, Field, ResourceKind, ScorecardTarget, ServiceName, TeamName,
    Version,
};

/// A parse and whether the parser is sure of it. An unsure parse is a
/// candidate for a second opinion (the LLM), never for execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub action: Action,
    pub sure: bool,
}

/// The rules parser for one catalog. Rebuild it when the catalog changes.
#[derive(Debug, Clone)]
pub struct RulesParser {
    index: CatalogIndex,
}

impl RulesParser {
    pub fn new(catalog: &Catalog) -> Self {
        RulesParser {
            index: CatalogIndex::new(catalog),
        }
    }

    pub fn parse(&self, text: &str) -> Parsed {
        let clean = markup::strip(text);
        let tokens = tokenize(&clean);
        Message::new(&self.index, &clean, &tokens).decide()
    }

    /// The catalog index the parser resolves names with (shared with the
    /// LLM path, so a proposal is normalized exactly like a parse).
    pub(crate) fn index(&self) -> &CatalogIndex {
        &self.index
    }

    /// The entities a message names, whatever its intent: what follow-ups
    /// ("make it production instead", "also add redis") and the LLM path's
    /// checks are built from.
    pub(crate) fn mentions(&self, text: &str) -> Mentions {
        let clean = markup::strip(text);
        let tokens = tokenize(&clean);
        Message::new(&self.index, &clean, &tokens).mentions()
    }
}

/// What a message names, read with the parser's own entity rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Mentions {
    /// Services named exactly, in order.
    pub exact: Vec<ServiceName>,
    /// Services named by a unique prefix, a later part or a clear typo.
    pub fuzzy: Vec<ServiceName>,
    /// Words that fit several services: the services.
    pub ambiguous: Vec<ServiceName>,
    /// Nearest names to words that look like unknown service names.
    pub near: Vec<ServiceName>,
    /// The environment the message is about (a targeted one first).
    pub environment: Option<Environment>,
    pub from: Option<Environment>,
    pub to: Option<Environment>,
    /// Resources asked for (negated ones left out).
    pub resources: Vec<ResourceKind>,
    /// Resources taken away ("without redis", "drop the cache").
    pub removed: Vec<ResourceKind>,
    pub version: Option<Version>,
    pub replicas: Option<u32>,
    pub teams: Vec<TeamName>,
    /// The words, lowercased, without markup and punctuation.
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mood {
    Imperative,
    Question,
    /// "how do I …", "how to …": a question about the platform itself.
    HowTo,
}

struct Message<'a> {
    index: &'a CatalogIndex,
    clean: &'a str,
    words: Vec<&'a str>,
    punct: Vec<bool>,
    /// Tokens that belong to a catalog name and so are nothing else.
    covered: Vec<bool>,
    /// The exact service matches, by position.
    exact: Vec<(usize, usize, ServiceName)>,
    cues: Vec<(usize, Cue, usize)>,
}

const CLAUSE_WORDS: [&str; 3] = ["also", "then", "afterwards"];

impl<'a> Message<'a> {
    fn new(index: &'a CatalogIndex, clean: &'a str, tokens: &'a [Token]) -> Self {
        let words: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        let punct: Vec<bool> = tokens.iter().map(|t| t.punct).collect();
        let mut m = Message {
            index,
            clean,
            covered: vec![false; words.len()],
            words,
            punct,
            exact: Vec::new(),
            cues: Vec::new(),
        };
        m.find_exact_services();
        m.find_cues();
        m
    }

    fn is_word(&self, i: usize) -> bool {
        i < self.words.len() && !self.punct[i]
    }

    fn word(&self, i: usize) -> &'a str {
        self.words.get(i).copied().unwrap_or("")
    }

    fn find_exact_services(&mut self) {
        let n = self.words.len();
        let mut i = 0;
        while i < n {
            let mut matched = 0;
            for len in (1..=4).rev() {
                if i + len > n || !(i..i + len).all(|j| self.is_word(j)) {
                    continue;
                }
                let run = &self.words[i..i + len];
                if let Some(name) = self.index.exact(run) {
                    self.exact.push((i, len, name.clone()));
                    matched = len;
                    break;
                }
            }
            if matched > 0 {
                for j in i..i + matched {
                    self.covered[j] = true;
                }
                i += matched;
            } else {
                i += 1;
            }
        }
    }

    fn find_cues(&mut self) {
        let mut i = 0;
        while i < self.words.len() {
            if self.covered[i] || self.punct[i] {
                i += 1;
                continue;
            }
            if let Some((cue, len)) = cue_at(&self.words, i) {
                self.cues.push((i, cue, len));
                i += len;
            } else {
                i += 1;
            }
        }
    }

    fn has_cue(&self, cue: Cue) -> bool {
        self.cues.iter().any(|(_, c, _)| *c == cue)
    }

    /// The first word that is not a greeting or filler.
    fn first_content(&self) -> Option<usize> {
        (0..self.words.len()).find(|&i| self.is_word(i) && !is_filler(self.words[i]))
    }

    fn mood(&self) -> Mood {
        let joined = |i: usize, phrase: &[&str]| {
            phrase
                .iter()
                .enumerate()
                .all(|(k, p)| self.word(i + k) == *p)
        };
        for i in 0..self.words.len() {
            let how_to = joined(i, &["how", "to"])
                || joined(i, &["how", "do", "i"])
                || joined(i, &["how", "do", "we"])
                || joined(i, &["how", "can", "i"])
                || joined(i, &["how", "can", "we"])
                || joined(i, &["how", "should", "i"])
                || joined(i, &["how", "should", "we"])
                || joined(i, &["how", "would", "i"])
                || joined(i, &["how", "does", "one"])
                || joined(i, &["is", "it", "possible"])
                || joined(i, &["is", "there", "a", "way"])
                || joined(i, &["best", "way", "to"]);
            if how_to {
                return Mood::HowTo;
            }
        }
        let Some(first) = self.first_content() else {
            return Mood::Imperative;
        };
        let w = self.words[first];
        let next = self.word(first + 1);
        // "can I deploy on fridays?" asks; "can we get a staging env" requests.
        if matches!(w, "can" | "could" | "would" | "will" | "may")
            && matches!(next, "i" | "we")
            && !matches!(self.word(first + 2), "get" | "have" | "please")
        {
            return Mood::HowTo;
        }
        if is_interrogative(w) {
            Mood::Question
        } else {
            Mood::Imperative
        }
    }

    /// Where the clause holding the cue at `pos` ends: at the first later
    /// boundary followed by another request ("…; also deploy it").
    fn scope_end(&self, pos: usize) -> usize {
        let n = self.words.len();
        let is_boundary = |i: usize| {
            (self.punct[i] && matches!(self.words[i], ";" | "." | "!" | "?"))
                || (!self.punct[i] && CLAUSE_WORDS.contains(&self.words[i]))
                || (self.words[i] == "and"
                    && self
                        .cues
                        .iter()
                        .any(|(p, c, _)| (*p == i + 1 || *p == i + 2) && !c.is_weak()))
        };
        let boundaries: Vec<usize> = (pos + 1..n).filter(|&i| is_boundary(i)).collect();
        for (k, &b) in boundaries.iter().enumerate() {
            let end = boundaries.get(k + 1).copied().unwrap_or(n);
            let strong_after = self
                .cues
                .iter()
                .any(|(p, c, _)| *p > b && *p < end && !c.is_weak() && *c != Cue::Need);
            if strong_after {
                return b;
            }
        }
        n
    }

    fn mentions(&self) -> Mentions {
        let n = self.words.len();
        let mut m = Mentions {
            exact: self.exact.iter().map(|(_, _, s)| s.clone()).collect(),
            ..Mentions::default()
        };
        let push = |list: &mut Vec<ServiceName>, s: ServiceName| {
            if !list.contains(&s) {
                list.push(s);
            }
        };
        for i in 0..n {
            if !self.is_word(i) || self.covered[i] {
                continue;
            }
            let w = self.words[i];
            if is_common(w) || environment_at(&self.words, i).is_some() {
                continue;
            }
            if self.index.team(w, false).is_some() || self.index.is_template(w) {
                continue;
            }
            if w.contains('-') && w.as_bytes()[0].is_ascii_alphabetic() {
                match self.index.typo(w) {
                    Ok(s) => push(&mut m.fuzzy, s),
                    Err(near) => near.into_iter().for_each(|s| push(&mut m.near, s)),
                }
                continue;
            }
            if w.bytes().any(|b| b.is_ascii_digit()) {
                continue;
            }
            let next = self.word(i + 1);
            if is_service_noun(next) {
                if let Ok(s) = self.index.typo(&format!("{w}-{next}")) {
                    push(&mut m.fuzzy, s);
                    continue;
                }
            }
            let partial = self.index.partial(w);
            match partial.len() {
                0 => {
                    if let Ok(s) = self.index.typo(w) {
                        push(&mut m.fuzzy, s);
                    }
                }
                1 => partial.into_iter().for_each(|s| push(&mut m.fuzzy, s)),
                _ => partial.into_iter().for_each(|s| push(&mut m.ambiguous, s)),
            }
        }
        m.environment = self.environment(n);
        (m.from, m.to) = self.source_target(n);
        m.resources = self.resources(0, n).into_iter().map(|(_, k)| k).collect();
        for i in 0..n {
            if !self.is_word(i) || self.covered[i] {
                continue;
            }
            let kind = resource_phrase(self.words[i], self.word(i + 1))
                .or_else(|| ResourceKind::from_word(self.words[i]));
            let Some(kind) = kind else { continue };
            let taken_away = (1..=3).any(|k| {
                matches!(
                    self.word(i.wrapping_sub(k)),
                    "without"
                        | "no"
                        | "not"
                        | "except"
                        | "minus"
                        | "skip"
                        | "remove"
                        | "drop"
                        | "delete"
                        | "lose"
                        | "ditch"
                )
            });
            if taken_away {
                m.resources.retain(|k| *k != kind);
                if !m.removed.contains(&kind) {
                    m.removed.push(kind);
                }
            }
        }
        m.version = self.version(n);
        m.replicas = self.replicas(n);
        if let Some((_, t)) = self.team_at(n) {
            m.teams.push(t);
        }
        m.words = (0..n)
            .filter(|&i| self.is_word(i))
            .map(|i| self.words[i].to_owned())
            .collect();
        m
    }

    fn decide(&self) -> Parsed {
        let has_words = (0..self.words.len()).any(|i| self.is_word(i));
        if !has_words {
            return sure(Action::Nothing);
        }
        let n = self.words.len();
        let only_chatter = (0..n)
            .filter(|&i| self.is_word(i))
            .all(|i| is_chatter(self.words[i]) || is_filler(self.words[i]));
        if only_chatter && self.exact.is_empty() {
            return sure(Action::Nothing);
        }
        let mood = self.mood();
        let strong: Vec<&(usize, Cue, usize)> =
            self.cues.iter().filter(|(_, c, _)| !c.is_weak()).collect();

        if self.is_help_request(&strong) {
            return sure(Action::Help);
        }
        if self.has_cue(Cue::Scorecard) {
            return self.scorecard(n);
        }
        let who = self.first_content().is_some_and(|i| self.words[i] == "who");
        let acted_on = strong
            .iter()
            .any(|(_, c, _)| !matches!(c, Cue::Owner | Cue::Scorecard));
        if self.has_cue(Cue::Owner) || (who && !acted_on) {
            return self.with_service(ActionKind::WhoOwns, n, |service| Action::WhoOwns {
                service,
            });
        }
        match mood {
            Mood::HowTo => return self.ask(),
            Mood::Question => return self.question(n),
            Mood::Imperative => {}
        }

        // A status verb leading the message decides it ("show me X",
        // "check on X"), whatever follows.
        let leading = self.first_content();
        let status_first = self
            .cues
            .first()
            .is_some_and(|(p, c, _)| *c == Cue::Status && Some(*p) == leading);
        let primary = if status_first {
            self.cues.first()
        } else {
            strong.first().copied().or_else(|| {
                self.cues
                    .iter()
                    .find(|(_, c, _)| *c == Cue::Status)
                    .or_else(|| self.cues.iter().find(|(_, c, _)| *c == Cue::Need))
            })
        };
        let Some(&(pos, cue, len)) = primary else {
            return self.no_cue(n);
        };
        let end = self.scope_end(pos);
        let after = pos + len;
        match cue {
            Cue::Create | Cue::Need | Cue::Scaffold => {
                if cue == Cue::Scaffold || self.looks_like_scaffold(end) {
                    self.scaffold(end)
                } else {
                    self.create_or_add(after, end)
                }
            }
            Cue::Add => self.create_or_add(after, end),
            Cue::Destroy => {
                if self.object_is_resource(after, end) {
                    // Removing one resource is not an action Paver has.
                    self.ask()
                } else {
                    self.env_action(
                        ActionKind::DestroyEnvironment,
                        end,
                        |service, environment| Action::DestroyEnvironment {
                            service,
                            environment,
                        },
                    )
                }
            }
            Cue::Deploy => {
                let (from, to) = self.source_target(end);
                if from.is_some() && to.is_some() {
                    self.promote(end)
                } else if self.new_environment_follows(after, end) {
                    self.create_or_add(after, end)
                } else {
                    self.deploy_like(ActionKind::Deploy, end)
                }
            }
            Cue::Rollback => self.deploy_like(ActionKind::Rollback, end),
            Cue::Promote | Cue::Move => self.promote(end),
            Cue::Scale => self.scale(end),
            Cue::Bump => {
                if self.replicas(end).is_none() && self.version(end).is_some() {
                    self.deploy_like(ActionKind::Deploy, end)
                } else {
                    self.scale(end)
                }
            }
            Cue::Restart => self.env_action(ActionKind::Restart, end, |service, environment| {
                Action::Restart {
                    service,
                    environment,
                }
            }),
            Cue::Status => self.status(end),
            Cue::Help => sure(Action::Help),
            Cue::Owner | Cue::Scorecard => unreachable!("handled above"),
        }
    }

    fn is_help_request(&self, strong: &[&(usize, Cue, usize)]) -> bool {
        if !strong.is_empty() || !self.exact.is_empty() {
            return false;
        }
        let phrase = |p: &[&str]| {
            (0..self.words.len()).any(|i| p.iter().enumerate().all(|(k, w)| self.word(i + k) == *w))
        };
        if phrase(&["what", "can", "you"])
            || phrase(&["what", "do", "you", "do"])
            || phrase(&["how", "do", "i", "use", "you"])
            || phrase(&["what", "are", "you", "able"])
            || phrase(&["list", "commands"])
            || phrase(&["what", "commands"])
            || phrase(&["which", "commands"])
        {
            return true;
        }
        // "help", "help me", "@paver help please": help and nothing else.
        self.has_cue(Cue::Help)
            && (0..self.words.len()).filter(|&i| self.is_word(i)).all(|i| {
                let w = self.words[i];
                is_filler(w)
                    || matches!(
                        w,
                        "help"
                            | "me"
                            | "us"
                            | "commands"
                            | "usage"
                            | "need"
                            | "i"
                            | "with"
                            | "you"
                            | "can"
                            | "show"
                            | "what"
                            | "the"
                    )
            })
    }

    fn no_cue(&self, n: usize) -> Parsed {
        match self.service(n) {
            Some(ServiceMatch::Exact(service)) => unsure(Action::Status {
                service,
                environment: self.environment(n),
            }),
            _ => {
                let asks = self.words.contains(&"?")
                    || (0..n).any(|i| self.is_word(i) && is_platform_word(self.words[i]));
                if asks {
                    self.ask()
                } else {
                    unsure(Action::Nothing)
                }
            }
        }
    }

    fn question(&self, n: usize) -> Parsed {
        let first = self.first_content().map(|i| self.words[i]).unwrap_or("");
        if first == "why" {
            return self.ask();
        }
        match self.service(n) {
            None => self.ask(),
            Some(_) => self.status(n),
        }
    }

    fn ask(&self) -> Parsed {
        let question = self.clean.split_whitespace().collect::<Vec<_>>().join(" ");
        sure(Action::Ask { question })
    }

    // ----- entities -------------------------------------------------------

    /// The service the clause is about: an exact name first, else a unique
    /// prefix or clear typo, else what it is ambiguous between.
    fn service(&self, end: usize) -> Option<ServiceMatch> {
        if let Some((_, _, name)) = self.exact.iter().find(|(p, _, _)| *p < end) {
            return Some(ServiceMatch::Exact(name.clone()));
        }
        let mut fuzzy = None;
        let mut ambiguous = None;
        let mut unknown = None;
        for i in 0..end.min(self.words.len()) {
            if !self.is_word(i) || self.covered[i] {
                continue;
            }
            let w = self.words[i];
            if self.index.team(w, false).is_some() || self.index.is_template(w) {
                continue;
            }
            let hyphenated = w.contains('-') && w.as_bytes()[0].is_ascii_alphabetic();
            if hyphenated {
                if is_common(w) || environment_at(&self.words, i).is_some() {
                    continue;
                }
                match self.index.typo(w) {
                    Ok(name) => {
                        fuzzy.get_or_insert(name);
                    }
                    Err(near) => {
                        unknown.get_or_insert(near);
                    }
                }
                continue;
            }
            if is_common(w) || w.bytes().any(|b| b.is_ascii_digit()) {
                continue;
            }
            // "odrer service": the word and a service noun, joined.
            let next = self.word(i + 1);
            if is_service_noun(next) {
                if let Ok(name) = self.index.typo(&format!("{w}-{next}")) {
                    fuzzy.get_or_insert(name);
                    continue;
                }
            }
            let partial = self.index.partial(w);
            match partial.len() {
                0 => {
                    if let Ok(name) = self.index.typo(w) {
                        fuzzy.get_or_insert(name);
                    }
                }
                1 => {
                    fuzzy.get_or_insert(partial.into_iter().next().expect("one"));
                }
                _ => {
                    ambiguous.get_or_insert(partial);
                }
            }
        }
        fuzzy
            .map(ServiceMatch::Fuzzy)
            .or(ambiguous.map(ServiceMatch::Ambiguous))
            .or(unknown.map(ServiceMatch::Unknown))
    }

    fn environments(&self, end: usize) -> Vec<(usize, Environment)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < end.min(self.words.len()) {
            if !self.is_word(i) || self.covered[i] {
                i += 1;
                continue;
            }
            // "go live" is not an environment; "test suite" neither.
            let w = self.words[i];
            let skip = (w == "live" && self.word(i.wrapping_sub(1)) == "go")
                || (w == "test" && matches!(self.word(i + 1), "suite" | "run" | "case"));
            match environment_at(&self.words, i) {
                Some((env, len)) if !skip => {
                    out.push((i, env));
                    i += len;
                }
                _ => i += 1,
            }
        }
        out
    }

    /// The environment a clause names; one after "to/in/on" wins over one
    /// that merely appears ("the staging db of X in prod" is about prod).
    fn environment(&self, end: usize) -> Option<Environment> {
        let envs = self.environments(end);
        let targeted = envs.iter().find(|(p, _)| {
            matches!(
                self.word(p.wrapping_sub(1)),
                "to" | "in" | "on" | "into" | "onto"
            ) || matches!(self.word(p.wrapping_sub(2)), "to" | "in" | "on" | "into")
                && self.word(p.wrapping_sub(1)) == "the"
        });
        targeted.or(envs.first()).map(|(_, e)| *e)
    }

    fn source_target(&self, end: usize) -> (Option<Environment>, Option<Environment>) {
        let envs = self.environments(end);
        let before = |p: usize, words: &[&str]| {
            let prev = self.word(p.wrapping_sub(1));
            let prev2 = self.word(p.wrapping_sub(2));
            words.contains(&prev) || (prev == "the" && words.contains(&prev2))
        };
        let from = envs
            .iter()
            .find(|(p, _)| before(*p, &["from"]))
            .map(|(_, e)| *e);
        let to = envs
            .iter()
            .find(|(p, _)| before(*p, &["to", "into", "onto"]))
            .map(|(_, e)| *e);
        (from, to)
    }

    fn resources(&self, start: usize, end: usize) -> Vec<(usize, ResourceKind)> {
        let mut out: Vec<(usize, ResourceKind)> = Vec::new();
        let mut last_specific: Option<usize> = None;
        let mut i = start;
        while i < end.min(self.words.len()) {
            if !self.is_word(i) || self.covered[i] {
                i += 1;
                continue;
            }
            let w = self.words[i];
            let negated = (1..=2).any(|k| {
                matches!(
                    self.word(i.wrapping_sub(k)),
                    "without" | "no" | "not" | "except" | "minus" | "skip"
                )
            });
            let (kind, len, specific) = if let Some(k) = resource_phrase(w, self.word(i + 1)) {
                (Some(k), 2, true)
            } else if let Some(k) = ResourceKind::from_word(w) {
                (Some(k), 1, w != "cache" && w != "bucket" && w != "buckets")
            } else if let Some(k) = generic_resource(w) {
                let follows_specific = last_specific.is_some_and(|p| i - p <= 3);
                (if follows_specific { None } else { Some(k) }, 1, false)
            } else {
                (None, 1, false)
            };
            if let Some(k) = kind {
                let follows_specific = last_specific.is_some_and(|p| i - p <= 3);
                let merged = !specific && follows_specific;
                if !negated && !merged && !out.iter().any(|(_, o)| *o == k) {
                    out.push((i, k));
                }
                if specific {
                    last_specific = Some(i + len - 1);
                }
            }
            i += len;
        }
        out
    }

    fn version(&self, end: usize) -> Option<Version> {
        for i in 0..end.min(self.words.len()) {
            if !self.is_word(i) || self.covered[i] {
                continue;
            }
            let w = self.words[i];
            let prev = self.word(i.wrapping_sub(1));
            // "postgres 16.2" is the database's version, not the service's.
            if ResourceKind::from_word(prev).is_some() {
                continue;
            }
            let introduced = matches!(
                prev,
                "@" | "version" | "tag" | "sha" | "commit" | "revision" | "rev" | "build"
            );
            let dotted = looks_like_version(w);
            let v_number = (w.starts_with('v') || w.starts_with('V'))
                && w.len() > 1
                && w[1..].bytes().all(|b| b.is_ascii_digit());
            let tagged = introduced
                && w.bytes().any(|b| b.is_ascii_digit())
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
            if dotted || v_number || tagged {
                if let Ok(v) = Version::parse(w) {
                    return Some(v);
                }
            }
        }
        None
    }

    fn replicas(&self, end: usize) -> Option<u32> {
        let end = end.min(self.words.len());
        let number = |i: usize| -> Option<u32> {
            if !self.is_word(i) || self.covered[i] {
                return None;
            }
            let w = self.words[i];
            if let Some(n) = number_word(w) {
                // "a couple", "a dozen"; but "one of" is not a count.
                return Some(n);
            }
            let digits = w.strip_suffix('x').unwrap_or(w);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return digits.parse().ok();
            }
            None
        };
        // A count next to its noun is the surest.
        for i in 0..end {
            if let Some(n) = number(i) {
                if is_replica_noun(self.word(i + 1))
                    || self.words[i].ends_with('x') && self.words[i].len() > 1
                {
                    return Some(n);
                }
            }
        }
        // "by 2" is relative to a count we do not know.
        for i in 0..end {
            if let Some(n) = number(i) {
                let prev = self.word(i.wrapping_sub(1));
                if prev == "by" {
                    continue;
                }
                if matches!(prev, "to" | "=" | "at" | "of") || !is_replica_noun(prev) {
                    return Some(n);
                }
            }
        }
        None
    }

    fn team(&self, end: usize) -> Option<TeamName> {
        self.team_at(end).map(|(_, t)| t)
    }

    /// A team mention and the positions of its words ("the data team").
    fn team_at(&self, end: usize) -> Option<(Vec<usize>, TeamName)> {
        for i in 0..end.min(self.words.len()) {
            if !self.is_word(i) {
                continue;
            }
            let w = self.words[i];
            let adjacent = matches!(self.word(i + 1), "team" | "squad" | "group")
                || matches!(self.word(i.wrapping_sub(1)), "team" | "squad");
            if let Some(t) = self.index.team(w, adjacent) {
                let mut at = vec![i];
                if matches!(self.word(i + 1), "team" | "squad" | "group") {
                    at.push(i + 1);
                }
                if matches!(self.word(i.wrapping_sub(1)), "team" | "squad") {
                    at.push(i - 1);
                }
                return Some((at, t.clone()));
            }
        }
        None
    }

    /// The first thing after the verb: a resource (add it) or an
    /// environment (create it)?
    fn object_is_resource(&self, after: usize, end: usize) -> bool {
        let first_resource = self.resources(after, end).first().map(|(p, _)| *p);
        let first_env = (after..end.min(self.words.len())).find(|&i| {
            self.is_word(i)
                && !self.covered[i]
                && (is_env_noun(self.words[i]) || environment_at(&self.words, i).is_some())
        });
        match (first_resource, first_env) {
            (Some(r), Some(e)) => r < e,
            (Some(_), None) => true,
            _ => false,
        }
    }

    fn new_environment_follows(&self, after: usize, end: usize) -> bool {
        (after..end.min(self.words.len())).any(|i| {
            is_env_noun(self.word(i))
                && (1..=3).any(|k| i >= after + k && self.word(i - k) == "new")
        })
    }

    fn looks_like_scaffold(&self, end: usize) -> bool {
        let any_env = (0..end.min(self.words.len())).any(|i| {
            self.is_word(i)
                && !self.covered[i]
                && (is_env_noun(self.words[i]) || environment_at(&self.words, i).is_some())
        });
        if any_env {
            return false;
        }
        // "called X" names something new, even when X is already taken.
        if self.new_name(end).is_some() {
            return true;
        }
        // "a new go service", "a python microservice"
        (0..end.min(self.words.len())).any(|i| {
            is_service_noun(self.word(i))
                && (1..=3).any(|k| {
                    i >= k && {
                        let w = self.word(i - k);
                        w == "new" || self.index.template(&[w]).is_ok()
                    }
                })
        }) && self.exact.is_empty()
    }

    /// The name of a service to be created: after "called"/"named", after
    /// "service:", or right after the service noun.
    fn new_name(&self, end: usize) -> Option<(usize, &'a str)> {
        let end = end.min(self.words.len());
        for i in 0..end {
            let w = self.words[i];
            let marker = matches!(w, "called" | "named")
                || (w == "name" && !self.punct[i])
                || (w == ":" && i > 0 && is_service_noun(self.word(i - 1)));
            if marker {
                let mut j = i + 1;
                while j < end && (self.punct[j] || matches!(self.words[j], "is" | "it" | "the")) {
                    j += 1;
                }
                if j < end && ServiceName::parse(self.words[j]).is_ok() {
                    return Some((j, self.words[j]));
                }
            }
        }
        for i in 0..end {
            if is_service_noun(self.words[i]) {
                let j = i + 1;
                if j < end
                    && !self.punct[j]
                    && self.words[j].contains('-')
                    && ServiceName::parse(self.words[j]).is_ok()
                {
                    return Some((j, self.words[j]));
                }
            }
        }
        None
    }

    // ----- actions --------------------------------------------------------

    fn with_service(
        &self,
        intent: ActionKind,
        end: usize,
        build: impl FnOnce(ServiceName) -> Action,
    ) -> Parsed {
        match self.service(end) {
            Some(ServiceMatch::Exact(s)) => sure(build(s)),
            Some(ServiceMatch::Fuzzy(s)) => unsure(build(s)),
            other => self.missing_service(intent, other, vec![]),
        }
    }

    fn missing_service(
        &self,
        intent: ActionKind,
        found: Option<ServiceMatch>,
        mut also: Vec<Field>,
    ) -> Parsed {
        let candidates = match found {
            Some(ServiceMatch::Ambiguous(c)) | Some(ServiceMatch::Unknown(c)) => {
                c.into_iter().map(String::from).collect()
            }
            _ => Vec::new(),
        };
        let mut missing = vec![Field::Service];
        missing.append(&mut also);
        unsure(Action::clarify(intent, missing, candidates))
    }

    /// Resolves the service and the environment, or says which is missing.
    fn service_env(
        &self,
        intent: ActionKind,
        end: usize,
    ) -> Result<(ServiceName, Environment, bool), Parsed> {
        let env = self.environment(end);
        let (service, fuzzy) = match self.service(end) {
            Some(ServiceMatch::Exact(s)) => (s, false),
            Some(ServiceMatch::Fuzzy(s)) => (s, true),
            other => {
                let also = if env.is_none() {
                    vec![Field::Environment]
                } else {
                    vec![]
                };
                return Err(self.missing_service(intent, other, also));
            }
        };
        match env {
            Some(e) => Ok((service, e, !fuzzy)),
            None => Err(unsure(Action::clarify(
                intent,
                vec![Field::Environment],
                vec![],
            ))),
        }
    }

    fn env_action(
        &self,
        intent: ActionKind,
        end: usize,
        build: impl FnOnce(ServiceName, Environment) -> Action,
    ) -> Parsed {
        match self.service_env(intent, end) {
            Ok((s, e, is_sure)) => Parsed {
                action: build(s, e),
                sure: is_sure,
            },
            Err(p) => p,
        }
    }

    fn create_or_add(&self, after: usize, end: usize) -> Parsed {
        let add = self.object_is_resource(after, end);
        let intent = if add {
            ActionKind::AddResource
        } else {
            ActionKind::CreateEnvironment
        };
        let resources: Vec<ResourceKind> =
            self.resources(0, end).into_iter().map(|(_, k)| k).collect();
        match self.service_env(intent, end) {
            Ok((service, environment, is_sure)) => {
                let action = if add {
                    Action::AddResource {
                        service,
                        environment,
                        resources,
                    }
                } else {
                    Action::CreateEnvironment {
                        service,
                        environment,
                        resources,
                    }
                };
                Parsed {
                    action,
                    sure: is_sure,
                }
            }
            Err(p) => p,
        }
    }

    fn deploy_like(&self, intent: ActionKind, end: usize) -> Parsed {
        let version = self.version(end);
        self.env_action(intent, end, |service, environment| {
            if intent == ActionKind::Rollback {
                Action::Rollback {
                    service,
                    environment,
                    version,
                }
            } else {
                Action::Deploy {
                    service,
                    environment,
                    version,
                }
            }
        })
    }

    fn promote(&self, end: usize) -> Parsed {
        let (from, to) = self.source_target(end);
        let (service, fuzzy) = match self.service(end) {
            Some(ServiceMatch::Exact(s)) => (s, false),
            Some(ServiceMatch::Fuzzy(s)) => (s, true),
            other => return self.missing_service(ActionKind::Promote, other, vec![]),
        };
        // Promotion goes one step along dev → staging → production.
        let (from, to) = match (from, to) {
            (Some(f), Some(t)) => (Some(f), Some(t)),
            (None, Some(t)) => (t.previous(), Some(t)),
            (Some(f), None) => (Some(f), f.next()),
            (None, None) => match self.environments(end).first() {
                Some((_, e)) => (e.previous(), Some(*e)),
                None => (None, None),
            },
        };
        match (from, to) {
            (Some(from), Some(to)) if from != to => Parsed {
                action: Action::Promote { service, from, to },
                sure: !fuzzy,
            },
            (None, Some(_)) => unsure(Action::clarify(
                ActionKind::Promote,
                vec![Field::From],
                vec![],
            )),
            _ => unsure(Action::clarify(
                ActionKind::Promote,
                vec![Field::To],
                vec![],
            )),
        }
    }

    fn scale(&self, end: usize) -> Parsed {
        let replicas = self.replicas(end);
        match self.service_env(ActionKind::Scale, end) {
            Ok((service, environment, is_sure)) => match replicas {
                Some(replicas) => Parsed {
                    action: Action::Scale {
                        service,
                        environment,
                        replicas,
                    },
                    sure: is_sure,
                },
                None => unsure(Action::clarify(
                    ActionKind::Scale,
                    vec![Field::Replicas],
                    vec![],
                )),
            },
            Err(p) => p,
        }
    }

    fn status(&self, end: usize) -> Parsed {
        let environment = self.environment(end);
        self.with_service(ActionKind::Status, end, |service| Action::Status {
            service,
            environment,
        })
    }

    fn scorecard(&self, n: usize) -> Parsed {
        match self.service(n) {
            Some(ServiceMatch::Exact(service)) => sure(Action::Scorecard {
                target: ScorecardTarget::Service { service },
            }),
            found => match self.team(n) {
                Some(team) => sure(Action::Scorecard {
                    target: ScorecardTarget::Team { team },
                }),
                None => match found {
                    Some(ServiceMatch::Fuzzy(service)) => unsure(Action::Scorecard {
                        target: ScorecardTarget::Service { service },
                    }),
                    other => self.missing_service(ActionKind::Scorecard, other, vec![]),
                },
            },
        }
    }

    fn scaffold(&self, end: usize) -> Parsed {
        let name = self.new_name(end);
        let owner_at = self.team_at(end);
        let owner_words = owner_at
            .as_ref()
            .map(|(at, _)| at.clone())
            .unwrap_or_default();
        let owner = owner_at.map(|(_, t)| t);
        let stack_words: Vec<&str> = (0..end.min(self.words.len()))
            .filter(|&i| self.is_word(i) && Some(i) != name.map(|(p, _)| p))
            .filter(|&i| {
                let w = self.words[i];
                !owner_words.contains(&i)
                    // "go" is a language only beside a service noun or after
                    // an article; otherwise it is the verb ("go ahead").
                    && (w != "go"
                        || is_service_noun(self.word(i + 1))
                        || matches!(self.word(i.wrapping_sub(1)), "a" | "an" | "in" | "new" | "using"))
            })
            .map(|i| self.words[i])
            .collect();
        let template = self.index.template(&stack_words);
        let mut missing = Vec::new();
        let name = match name {
            Some((_, n)) if !self.index.service_exists(n) => ServiceName::parse(n).ok(),
            _ => None,
        };
        if name.is_none() {
            missing.push(Field::Name);
        }
        let candidates = match &template {
            Ok(_) => Vec::new(),
            Err(c) => {
                missing.push(Field::Template);
                c.clone()
            }
        };
        match (name, template) {
            (Some(name), Ok(template)) => sure(Action::ScaffoldService {
                name,
                template,
                owner,
            }),
            _ => unsure(Action::clarify(
                ActionKind::ScaffoldService,
                missing,
                candidates,
            )),
        }
    }
}

fn sure(action: Action) -> Parsed {
    Parsed { action, sure: true }
}

fn unsure(action: Action) -> Parsed {
    Parsed {
        action,
        sure: false,
    }
}

fn looks_like_version(w: &str) -> bool {
    let v = w.strip_prefix('v').unwrap_or(w);
    let core = v.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.');
    let first_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let rest: Vec<&str> = parts.collect();
    first_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Words that make a cue-less message a question for the platform team.
fn is_platform_word(w: &str) -> bool {
    matches!(
        w,
        "deploy"
            | "deployment"
            | "pipeline"
            | "logs"
            | "log"
            | "database"
            | "credentials"
            | "access"
            | "error"
            | "errors"
            | "failing"
            | "failed"
            | "stuck"
            | "broken"
            | "kubernetes"
            | "k8s"
            | "cluster"
            | "secret"
            | "secrets"
            | "dns"
            | "certificate"
            | "cert"
            | "ci"
            | "build"
            | "docs"
            | "documentation"
            | "permission"
            | "permissions"
            | "oncall"
            | "on-call"
            | "metrics"
            | "dashboard"
            | "alerts"
            | "vault"
            | "terraform"
            | "helm"
    )
}
