//! The rules parser: chat text in, a typed [`Action`] (or `clarify`) out,
//! with no LLM, in microseconds.
//!
//! The text is cleaned of chat markup and tokenized; catalog names are found
//! first (so a service called `shipping-service` is never read as the verb
//! "ship"). Then every cue is weighed by its role (a verb leading the
//! request counts most; a topic — "the deploy", "yesterday's release" —
//! little; a negated or deferred one — "no rollback needed", "deploy can
//! wait" — nothing), the message's shape adds evidence of its own (a
//! version aimed at an environment, a count of pods, resources with an
//! environment, an arrow between environments), and the readings are
//! scored. The best reading backed by a verb wins; two changes argued for
//! about equally give `clarify`. Its clause bounds the entities, each
//! entity is read by its role (a rollback's version is the one it returns
//! to, never the broken one), and the confidence says how far to trust it:
//! a parse read from shape alone, a typo'd verb or a narrow lead is unsure,
//! which `auto` checks with the LLM. [`RulesParser::explain`] shows it all.

use super::index::{CatalogIndex, ServiceMatch};
use super::lexicon::{
    canonical_stack_word, cue_at, environment_at, generic_resource, is_ambiguous_env_word,
    is_chatter, is_common, is_determiner, is_env_noun, is_filler, is_gratitude, is_interrogative,
    is_modifier, is_negation, is_replica_noun, is_service_noun, is_trouble_word, number_word,
    resource_phrase, separable, typo_cue, typo_environment, Cue,
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
    /// How sure, from 0 to 1: the evidence for the reading, its lead over
    /// the next change argued for, and how exactly its fields were found.
    /// `sure` is `confidence >= Parsed::SURE_AT` with every field found.
    pub confidence: f32,
}

impl Parsed {
    /// The confidence from which a parse is sure (below it, `auto` asks
    /// the LLM).
    pub const SURE_AT: f32 = 0.6;
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
        Message::new(&self.index, &clean, &tokens).decide(&mut Trace::off())
    }

    /// The parse with its reasons: the cues found and what each weighed,
    /// the readings' scores, the confidence and what decided
    /// (`paver parse --explain`).
    pub fn explain(&self, text: &str) -> Explanation {
        let clean = markup::strip(text);
        let tokens = tokenize(&clean);
        let mut t = Trace::on();
        let parsed = Message::new(&self.index, &clean, &tokens).decide(&mut t);
        let mut e = t.into_explanation();
        e.cleaned = clean.split_whitespace().collect::<Vec<_>>().join(" ");
        e.parsed = Some(parsed);
        e
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
    /// Positions of cues read from a misspelt word.
    typos: Vec<usize>,
    /// Where the deciding cue stands: its object (the service, environment
    /// and version after it) comes before what the message mentioned
    /// earlier ("after the deploy of X finishes, restart Y").
    focus: std::cell::Cell<usize>,
    /// Every environment named, found once (`environments` filters it).
    envs: std::cell::OnceCell<Vec<(usize, Environment)>>,
    /// What each word could name in the catalog, found once.
    word_matches: std::cell::OnceCell<Vec<(usize, ServiceMatch)>>,
    /// `service` answers by (end, focus): the builders ask it often.
    services: std::cell::RefCell<Vec<ServiceAnswer>>,
}

/// A `service` answer for a (clause end, focus).
type ServiceAnswer = ((usize, usize), Option<ServiceMatch>);

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
            typos: Vec::new(),
            focus: std::cell::Cell::new(0),
            envs: std::cell::OnceCell::new(),
            word_matches: std::cell::OnceCell::new(),
            services: std::cell::RefCell::new(Vec::new()),
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
        let n = self.words.len();
        let mut taken = vec![false; n];
        let mut i = 0;
        while i < n {
            if self.covered[i] || self.punct[i] || taken[i] {
                i += 1;
                continue;
            }
            if let Some((cue, len)) = cue_at(&self.words, i) {
                self.cues.push((i, cue, len));
                i += len;
                continue;
            }
            // "roll it back", "hook a mariadb up to …": the particle a few
            // words on, within the sentence.
            let mut j = i + 1;
            let mut found = None;
            while j < n && j <= i + 6 && !self.punct[j] {
                if !taken[j] && !self.covered[j] {
                    if let Some(cue) = separable(self.words[i], self.words[j]) {
                        found = Some((cue, j));
                        break;
                    }
                }
                j += 1;
            }
            if let Some((cue, particle)) = found {
                taken[particle] = true;
                self.cues.push((i, cue, 1));
                i += 1;
                continue;
            }
            let w = self.words[i];
            if let Some(cue) = typo_cue(w) {
                if !is_common(w)
                    && !w.contains('-')
                    && environment_at(&self.words, i).is_none()
                    && self.index.partial(w).is_empty()
                {
                    self.cues.push((i, cue, 1));
                    self.typos.push(i);
                }
            }
            i += 1;
        }
    }

    fn has_cue(&self, cue: Cue) -> bool {
        self.cues.iter().any(|(_, c, _)| *c == cue)
    }

    fn version(&self, end: usize) -> Option<Version> {
        self.version_at(end).map(|(_, v)| v)
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
            // "is it possible to get a staging env for X?" with a catalog
            // service named is a polite request, not a how-to.
            let polite = (joined(i, &["is", "it", "possible"])
                || joined(i, &["would", "it", "be", "possible"])
                || joined(i, &["is", "there", "a", "way"]))
                && !self.exact.is_empty();
            if polite {
                return Mood::Imperative;
            }
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
        // "don't roll back, promote it", "do the rollback": imperatives.
        if w == "do" && (next == "not" || is_determiner(next)) {
            return Mood::Imperative;
        }
        // "if I deploy X to prod, will it need approval?", "maybe we
        // should restart X?": a hypothetical or advice question.
        // ("…we should roll it back, can you do that?" asks Paver to.)
        let asks = self.words.contains(&"?")
            && !(0..self.words.len()).any(|i| {
                matches!(self.words[i], "please" | "pls" | "plz")
                    || (matches!(self.words[i], "can" | "could" | "would")
                        && matches!(self.word(i + 1), "you" | "u" | "someone" | "somebody"))
            });
        if asks
            && (matches!(w, "if" | "whether")
                || (0..self.words.len()).any(|i| {
                    self.words[i] == "should"
                        && (matches!(self.word(i + 1), "i" | "we")
                            || matches!(self.word(i.wrapping_sub(1)), "i" | "we"))
                }))
        {
            return Mood::Question;
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
            // A negated, deferred or topical cue opens no request.
            let strong_after = self.cues.iter().any(|&(p, c, len)| {
                p > b
                    && p < end
                    && !c.is_weak()
                    && matches!(self.role(p, c, len), Role::Lead | Role::Verb)
            });
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

    fn decide(&self, t: &mut Trace) -> Parsed {
        let has_words = (0..self.words.len()).any(|i| self.is_word(i));
        if !has_words {
            t.decided("no words");
            return sure(Action::Nothing);
        }
        let n = self.words.len();
        let only_chatter = (0..n)
            .filter(|&i| self.is_word(i))
            .all(|i| is_chatter(self.words[i]) || is_filler(self.words[i]));
        if only_chatter && self.exact.is_empty() {
            t.decided("only thanks, greetings and fillers");
            return sure(Action::Nothing);
        }
        let hits = self.weigh();
        for h in &hits {
            t.cue(self, h);
        }
        // Cues that carry a request: not negated, deferred or a mere topic.
        let live: Vec<&Hit> = hits.iter().filter(|h| h.weight() >= 1.0).collect();
        let strong: Vec<&Hit> = live.iter().copied().filter(|h| !h.cue.is_weak()).collect();
        let mood = self.mood();

        if self.capability_question() {
            t.decided("a question about what Paver can do (addressed to it, no service named)");
            return sure(Action::Help);
        }
        if self.is_help_request(&strong) {
            t.decided("a request for help and nothing else");
            return sure(Action::Help);
        }
        if self.has_cue(Cue::Scorecard) {
            t.decided("scorecard word");
            return self.scorecard(n);
        }
        let first = self.first_content();
        let who = first.is_some_and(|i| self.words[i] == "who");
        // "which team has X", "what squad runs X": the answer is a team.
        let which_team = first.is_some_and(|i| {
            matches!(self.words[i], "which" | "what")
                && matches!(self.word(i + 1), "team" | "teams" | "squad" | "group")
        });
        let acted_on = strong
            .iter()
            .any(|h| !matches!(h.cue, Cue::Owner | Cue::Scorecard));
        if live.iter().any(|h| h.cue == Cue::Owner) || ((who || which_team) && !acted_on) {
            t.decided("an ownership question");
            return self.with_service(ActionKind::WhoOwns, n, |service| Action::WhoOwns {
                service,
            });
        }
        match mood {
            Mood::HowTo => {
                t.decided("a how-to question: for the platform docs");
                return self.ask();
            }
            Mood::Question => {
                t.decided("question form: a read, never a change");
                return self.question(n);
            }
            Mood::Imperative => {}
        }

        // Every cue and every shape adds to a reading.
        let mut scores = Scores::default();
        for h in &strong {
            scores.add(self.reading_of(h.cue, n), h.weight());
        }
        let shapes = self.shapes(n);
        for s in &shapes {
            t.evidence(s.kind, s.weight, s.what);
            scores.add(s.kind, s.weight);
        }
        t.scores(&scores);

        // A status verb leading the message decides it ("show me X",
        // "check on X"), whatever follows.
        // ("can you check whether X needs a restart?" asks for a status).
        let leading_status = hits.first().is_some_and(|h| {
            h.cue == Cue::Status
                && (Some(h.pos) == first || h.role == Role::Lead)
                && h.weight() > 0.0
        });
        if leading_status {
            t.decided("a status verb leads the message");
            let h = hits[0];
            return self.status(self.scope_end(h.pos));
        }

        // The best reading backed by a request verb.
        let verb_readings: Vec<ActionKind> = {
            let mut v: Vec<ActionKind> = strong.iter().map(|h| self.reading_of(h.cue, n)).collect();
            v.dedup();
            v
        };
        let best_verb = verb_readings.iter().copied().max_by(|a, b| {
            scores
                .get(*a)
                .total_cmp(&scores.get(*b))
                .then(std::cmp::Ordering::Greater)
        });
        if let Some(best) = best_verb {
            let best_score = scores.get(best);
            // Two requests argued for equally hard: ask which.
            let rival = verb_readings
                .iter()
                .copied()
                .filter(|k| *k != best && k.is_mutating())
                .max_by(|a, b| scores.get(*a).total_cmp(&scores.get(*b)));
            let rival_verb = rival.map(|k| {
                strong
                    .iter()
                    .filter(|h| self.reading_of(h.cue, n) == k)
                    .map(|h| h.weight())
                    .fold(0.0, f32::max)
            });
            if let (Some(r), Some(rw)) = (rival, rival_verb) {
                if best.is_mutating() && rw >= 2.0 && best_score - scores.get(r) < MARGIN {
                    t.decided(&format!(
                        "{} and {} are argued for about equally: asking which",
                        best.as_str(),
                        r.as_str()
                    ));
                    let mut c = Action::clarify(best, vec![], vec![]);
                    if let Action::Clarify {
                        candidates, intent, ..
                    } = &mut c
                    {
                        *candidates = vec![best.as_str().to_owned(), r.as_str().to_owned()];
                        *intent = None;
                    }
                    return Parsed {
                        action: c,
                        sure: false,
                        confidence: 0.3,
                    };
                }
            }
            let primary = strong
                .iter()
                .filter(|h| self.reading_of(h.cue, n) == best)
                .max_by(|a, b| a.weight().total_cmp(&b.weight()).then(b.pos.cmp(&a.pos)))
                .copied()
                .expect("a verb backs the reading");
            let conf = scores.confidence(best);
            t.decided(&format!(
                "the {} cue \"{}\" ({}, weight {:.1})",
                primary.cue.as_str(),
                self.span(primary.pos, primary.len),
                primary.role.as_str(),
                primary.weight()
            ));
            let typo = primary.typo;
            let p = self.dispatch(primary.pos, primary.cue, primary.len, n);
            let p = if typo {
                p
            } else {
                self.sure_of_absence(p, conf, n)
            };
            return with_confidence(p, if typo { conf.min(0.5) } else { conf });
        }

        // No request verb: a weak cue ("need", "start"), else the shape.
        // "get X status", "I need the health of X": a status asked for.
        let status_object = live.iter().any(|h| {
            h.cue == Cue::Need
                && live
                    .iter()
                    .any(|s| s.cue == Cue::Status && s.pos > h.pos && s.pos <= h.pos + 4)
        });
        if status_object {
            let h = live
                .iter()
                .find(|h| h.cue == Cue::Status)
                .expect("found above");
            t.decided("\"get\"/\"need\" with a status word: a status asked for");
            return self.status(self.scope_end(h.pos));
        }
        if let Some(h) = live.iter().find(|h| h.cue == Cue::Need) {
            t.decided("\"need\"/\"want\": the object decides");
            let p = self.dispatch(h.pos, h.cue, h.len, n);
            return with_confidence(p, 0.7);
        }
        if let Some(h) = live.iter().find(|h| h.cue == Cue::Start) {
            if self.looks_like_scaffold(self.scope_end(h.pos)) {
                t.decided("\"start\" with a new service's name or stack");
                return with_confidence(self.scaffold(self.scope_end(h.pos)), 0.7);
            }
        }
        if let Some(h) = live.iter().find(|h| h.cue == Cue::Status) {
            t.decided("status word");
            return self.status(self.scope_end(h.pos));
        }
        if let Some(best) = shapes.iter().max_by(|a, b| {
            a.weight
                .total_cmp(&b.weight)
                .then(std::cmp::Ordering::Greater)
        }) {
            t.decided(&format!("no request verb; the shape: {}", best.what));
            let p = self.by_shape(best.kind, n);
            // Two environments joined by an arrow, a service named: a
            // promotion and nothing else (an LLM asked about it turned
            // "X dev => staging" into a deploy). Other shapes stay a
            // candidate.
            let conf = if best.kind == ActionKind::Promote {
                0.7
            } else {
                0.5
            };
            return with_confidence(p, conf);
        }
        // "do NOT roll back X": the writer said what not to do, and nothing
        // else — not a request, and no model is asked to reread it (one
        // asked read it as a rollback).
        let refused = hits
            .iter()
            .any(|h| h.role == Role::Negated && self.reading_of(h.cue, n).is_mutating());
        if refused {
            t.decided("a change the writer says not to make, and no other cue");
            return sure(Action::Nothing);
        }
        t.decided("no cue");
        self.no_cue(n)
    }

    /// A question for what the message plainly lacks is as sure as the verb
    /// that asks it: "restart order-service" names no environment anywhere,
    /// and no reader, a model neither, can find one in it; a name the
    /// catalog holds twice ("payment") is for the asker to pick. Anything
    /// else missing (a service word the catalog does not know) stays unsure.
    fn sure_of_absence(&self, p: Parsed, conf: f32, n: usize) -> Parsed {
        let Action::Clarify {
            missing,
            candidates,
            intent: Some(_),
        } = &p.action
        else {
            return p;
        };
        if conf < Parsed::SURE_AT || missing.is_empty() {
            return p;
        }
        let any_env_word = !self.environments(n).is_empty()
            || (0..n.min(self.words.len())).any(|i| self.is_word(i) && is_env_noun(self.words[i]));
        let any_digit = self
            .words
            .iter()
            .any(|w| w.bytes().any(|b| b.is_ascii_digit()));
        let absent = missing.iter().all(|f| match f {
            Field::Environment | Field::From | Field::To => !any_env_word,
            Field::Version | Field::Replicas => !any_digit,
            // Names that fit several services; or no word that could be
            // a service at all ("restart please", "deploy it to staging"):
            // a model is shown only names near the message's words, so
            // it has none to give.
            Field::Service => !candidates.is_empty() || self.names_nothing(),
            _ => false,
        });
        if absent {
            Parsed {
                sure: true,
                confidence: conf,
                ..p
            }
        } else {
            p
        }
    }

    /// Whether no word of the message could be a service's name, known or
    /// unknown, exact or not.
    fn names_nothing(&self) -> bool {
        self.exact.is_empty() && self.word_matches().is_empty()
    }

    /// [`Self::find_word_matches`], found once per message.
    fn word_matches(&self) -> &[(usize, ServiceMatch)] {
        self.word_matches.get_or_init(|| self.find_word_matches())
    }

    /// The reading a cue argues for in this message ("bump" with a version
    /// is a deploy; "ship X from uat to live" a promotion).
    fn reading_of(&self, cue: Cue, n: usize) -> ActionKind {
        match cue {
            Cue::Bump if self.replicas(n).is_none() && self.version(n).is_some() => {
                ActionKind::Deploy
            }
            Cue::Deploy | Cue::Need => {
                let (from, to) = self.source_target(n);
                if from.is_some() && to.is_some() {
                    ActionKind::Promote
                } else {
                    cue.reading().expect("a reading")
                }
            }
            _ => cue.reading().unwrap_or(ActionKind::Nothing),
        }
    }

    /// The builder for the cue at `pos`, on the clause it opens.
    fn dispatch(&self, pos: usize, cue: Cue, len: usize, n: usize) -> Parsed {
        self.focus.set(pos);
        let end = self.scope_end(pos);
        let after = pos + len;
        match cue {
            Cue::Create | Cue::Need | Cue::Scaffold | Cue::Start => {
                let (from, to) = self.source_target(end);
                if cue == Cue::Scaffold || cue == Cue::Start || self.looks_like_scaffold(end) {
                    self.scaffold(end)
                } else if cue == Cue::Need && from.is_some() && to.is_some() {
                    self.promote(end)
                } else if cue == Cue::Need
                    && (after..end.min(self.words.len()))
                        .any(|i| is_replica_noun(self.words[i]) && self.words[i] != "x")
                {
                    // "give X 3 more pods", "X needs more instances".
                    self.scale(end)
                } else if cue == Cue::Need
                    && self.version(end).is_some()
                    && self.resources(0, end).is_empty()
                {
                    // "get X 1.8.2 out to staging", "I need X 2.0 on dev".
                    self.deploy_like(ActionKind::Deploy, end)
                } else if cue == Cue::Need && self.word(pos) == "give" {
                    // "give X in dev a redis": X, where it runs, receives;
                    // the thing given decides.
                    self.create_or_add_as(self.resource_comes_first(after, end, true), end)
                } else {
                    self.create_or_add(after, end)
                }
            }
            Cue::Add => {
                if self.resources(0, end).is_empty() || self.object_is_environment(after, end) {
                    self.create_or_add(after, end)
                } else {
                    self.add_resource(end)
                }
            }
            Cue::Destroy if self.object_is_pods(after, end) => {
                // "kill the pods of X", "delete X's containers": a restart.
                self.env_action(ActionKind::Restart, end, |service, environment| {
                    Action::Restart {
                        service,
                        environment,
                    }
                })
            }
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
            // "upgrade postgres on X": a resource's change, which Paver
            // does not make.
            Cue::Deploy | Cue::Restart
                if self.object_is_resource(after, end) && self.version(end).is_none() =>
            {
                self.ask()
            }
            // "redeploy the previous version of X": back to what ran before.
            Cue::Deploy
                if self.version(end).is_none() && self.names_previous_release(after, end) =>
            {
                self.deploy_like(ActionKind::Rollback, end)
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
            Cue::Owner | Cue::Scorecard => self.no_cue(n),
        }
    }

    /// The action a shape alone says, on the whole message.
    fn by_shape(&self, kind: ActionKind, n: usize) -> Parsed {
        let p = match kind {
            ActionKind::Promote => self.promote(n),
            ActionKind::Deploy => self.deploy_like(ActionKind::Deploy, n),
            ActionKind::Scale => self.scale(n),
            _ => self.create_or_add(0, n),
        };
        // A request read from its shape alone is a candidate, never sure —
        // but two environments joined by an arrow or from … to, with every
        // field found, name a promotion and nothing else.
        if kind == ActionKind::Promote {
            return p;
        }
        Parsed { sure: false, ..p }
    }

    /// The words of a span, for explanations.
    fn span(&self, pos: usize, len: usize) -> String {
        self.words[pos..(pos + len).min(self.words.len())].join(" ")
    }

    /// Each cue with its role: does it open the request, sit in it as a
    /// verb, or only name a topic ("the deploy", "no rollback", "deploy can
    /// wait")?
    fn weigh(&self) -> Vec<Hit> {
        let mut out: Vec<Hit> = Vec::with_capacity(self.cues.len());
        let clause = self.clauses();
        // "fyi", "heads up", "psa": an announcement of what the writer does.
        let announced = self.first_content().is_some_and(|i| {
            matches!(self.words[i], "fyi" | "psa" | "announcement")
                || (self.words[i] == "heads" && self.word(i + 1) == "up")
        });
        for &(pos, cue, len) in &self.cues {
            let typo = self.typos.contains(&pos);
            let role = match self.role(pos, cue, len) {
                Role::Lead | Role::Verb if announced => Role::Noun,
                r => r,
            };
            let request = matches!(role, Role::Lead | Role::Verb) && !cue.is_weak();
            // A later clause's request is another request: the first wins.
            let later = request
                && out.iter().any(|h| {
                    matches!(h.role, Role::Lead | Role::Verb)
                        && !h.cue.is_weak()
                        && clause[h.pos] < clause[pos]
                });
            let noun_cue = is_replica_noun(self.words[pos]);
            out.push(Hit {
                pos,
                cue,
                len,
                role,
                typo,
                later,
                noun_cue,
            });
        }
        out
    }

    /// Clause numbers: a new clause after `;`, `.`, `!`, `?` and "also",
    /// "then", "afterwards", "but".
    fn clauses(&self) -> Vec<u16> {
        let mut out = Vec::with_capacity(self.words.len());
        let mut c = 0u16;
        for i in 0..self.words.len() {
            let w = self.words[i];
            if (self.punct[i] && matches!(w, ";" | "." | "!" | "?"))
                || (!self.punct[i] && (CLAUSE_WORDS.contains(&w) || w == "but"))
            {
                c += 1;
            }
            out.push(c);
        }
        out
    }

    fn role(&self, pos: usize, cue: Cue, len: usize) -> Role {
        let w = self.words[pos];
        // "no rollback needed", "don't deploy", "without restarting".
        let prev = self.word(pos.wrapping_sub(1));
        let prev2 = self.word(pos.wrapping_sub(2));
        if pos >= 1 && !self.punct[pos - 1] && is_negation(prev)
            || pos >= 2
                && !self.punct[pos - 1]
                && !self.punct[pos - 2]
                && is_negation(prev2)
                && !matches!(prev, "only" | "just")
        {
            return Role::Negated;
        }
        // "no need to restart", "not going to deploy", "don't have to".
        let mut k = pos;
        while k > 0 && !self.punct[k - 1] && pos - k < 4 {
            k -= 1;
            let x = self.words[k];
            if is_negation(x) {
                return Role::Negated;
            }
            if !matches!(
                x,
                "need"
                    | "to"
                    | "going"
                    | "gonna"
                    | "have"
                    | "any"
                    | "more"
                    | "longer"
                    | "reason"
                    | "bother"
                    | "point"
                    | "in"
            ) {
                break;
            }
        }
        // "I'll deploy it myself", "we are rolling back X", "I just
        // restarted it": the writer says what they do, not what Paver
        // should.
        let mut k = pos;
        while k > 0 && !self.punct[k - 1] && pos - k < 4 {
            k -= 1;
            let x = self.words[k];
            if matches!(
                x,
                "will" | "am" | "are" | "was" | "were" | "did" | "have" | "had" | "already"
            ) && matches!(self.word(k.wrapping_sub(1)), "i" | "we")
            {
                return Role::Noun;
            }
            // "we might need to scale X": a possibility, not a request.
            if matches!(x, "might" | "may")
                && matches!(
                    self.word(k.wrapping_sub(1)),
                    "i" | "we" | "they" | "it" | "you"
                )
            {
                return Role::Noun;
            }
            if !matches!(
                x,
                "just"
                    | "already"
                    | "now"
                    | "also"
                    | "gonna"
                    | "going"
                    | "to"
                    | "about"
                    | "currently"
                    | "literally"
                    | "need"
            ) {
                break;
            }
        }
        // "deploy can wait till tomorrow", "restart it later".
        let mut j = pos + len;
        while j < self.words.len() && j < pos + len + 8 && !self.punct[j] {
            if matches!(self.words[j], "wait" | "later") {
                return Role::Deferred;
            }
            j += 1;
        }
        // "X deploys to staging", "restarts of X": a verb in -s is never
        // an order (the nouns that count pods are cues of their own).
        if w.len() > 4
            && w.ends_with('s')
            && !is_replica_noun(w)
            && cue.reading().is_some_and(ActionKind::is_mutating)
            && !matches!(cue, Cue::Need)
        {
            return Role::Noun;
        }
        // "see if X needs a rollback", "if X is down restart it", "when
        // the deploy finishes": inside a subordinate clause.
        let mut k = pos;
        while k > 0 && !self.punct[k - 1] {
            k -= 1;
            let x = self.words[k];
            if matches!(x, "but" | "so" | "because" | "and" | "then" | "also") {
                break;
            }
            // "…if someone could promote X": a polite request.
            let polite = matches!(
                self.word(k + 1),
                "someone" | "somebody" | "anyone" | "you" | "u"
            ) && matches!(self.word(k + 2), "could" | "can" | "would");
            if matches!(x, "if" | "whether" | "when" | "once" | "unless" | "until") && !polite {
                return Role::Noun;
            }
        }
        // "new" is a request only for an environment or a service ("the new
        // release" is a topic).
        if w == "new" {
            // What "new" modifies: past stack words and plain adjectives,
            // the first word must be an environment or a service noun.
            let mut k = pos + 1;
            while k < self.words.len()
                && !self.punct[k]
                && !self.covered[k]
                && (canonical_stack_word(self.words[k]) != self.words[k]
                    || self.index.is_template(self.words[k])
                    || matches!(
                        self.words[k],
                        "fresh" | "clean" | "small" | "little" | "empty" | "separate" | "dedicated"
                            | "data" | "go" | "python" | "rust" | "node" | "java" | "elixir"
                            | "ruby" | "scala" | "kotlin" | "backend" | "shiny"
                    )
                    // "a new elixir service": any one word before a service noun.
                    || is_service_noun(self.word(k + 1)))
            {
                k += 1;
            }
            let names_thing = k < self.words.len()
                && !self.covered[k]
                && (is_env_noun(self.words[k])
                    || is_service_noun(self.words[k])
                    || environment_at(&self.words, k).is_some());
            return if names_thing {
                Role::Verb
            } else {
                Role::Adjective
            };
        }
        // "make" creates only an environment ("make a staging env"); "make
        // it 8" or "make it production" sets something else.
        if w == "make" {
            let env_object = (pos + 1..(pos + 5).min(self.words.len()))
                .take_while(|&k| !self.punct[k])
                .any(|k| is_env_noun(self.words[k]));
            if !env_object {
                return Role::Adjective;
            }
        }
        if cue == Cue::Owner
            && w == "own"
            && matches!(
                prev,
                "our" | "my" | "your" | "their" | "its" | "his" | "her"
            )
        {
            return Role::Adjective;
        }
        // Walk back over fillers and politeness: the start of the message
        // or of a sentence makes it the request's verb.
        let mut k = pos;
        let lead = loop {
            if k == 0 {
                break true;
            }
            k -= 1;
            let x = self.words[k];
            if self.punct[k] {
                break !matches!(x, "@" | "/" | "'");
            }
            if x == "or" {
                break true;
            }
            if is_filler(x)
                || matches!(
                    x,
                    "can" | "could" | "would" | "will" | "you" | "u" | "we" | "i" | "just"
                        | "kindly" | "now" | "let" | "lets" | "to" | "go" | "ahead" | "then"
                        | "maybe" | "must" | "should" | "gotta" | "wanna" | "someone" | "need"
                        | "want" | "pls" | "please" | "plz"
                )
                || (x == "'s" && self.word(k.wrapping_sub(1)) == "let")
                // "rolling restart of X", "quick redeploy of X": the noun
                // opening the message is the request.
                || matches!(x, "rolling" | "full" | "hard" | "quick" | "emergency" | "urgent" | "another")
            {
                continue;
            }
            break false;
        };
        // The topic: after a determiner or a possessive, past adjectives,
        // names and versions ("the last prod deploy", "yesterday's
        // release", "thanks for restarting"), or before "of".
        let mut k = pos;
        let mut nominal = false;
        while k > 0 {
            k -= 1;
            let x = self.words[k];
            if self.punct[k] {
                break;
            }
            if self.covered[k]
                || is_modifier(x)
                || x.bytes().any(|b| b.is_ascii_digit())
                || environment_at(&self.words, k).is_some()
            {
                continue;
            }
            nominal = is_determiner(x) && !(x == "'s" && self.word(k.wrapping_sub(1)) == "let");
            break;
        }
        if self.word(pos + len) == "of" && !lead {
            nominal = true;
        }
        // A past form is a report ("I restarted it", "X got deployed"),
        // unless it is what someone needs done ("need X deployed", "want
        // it rolled back").
        if is_past_form(w) {
            let asked = (0..pos).rev().take_while(|&k| !self.punct[k]).any(|k| {
                matches!(
                    self.words[k],
                    "need"
                        | "needs"
                        | "want"
                        | "wants"
                        | "get"
                        | "have"
                        | "like"
                        | "please"
                        | "pls"
                )
            });
            return if asked { Role::Verb } else { Role::Noun };
        }
        // "give X a kick", "do a rollback of X", "I need a restart of X":
        // an action noun after a light verb is the request.
        if nominal && self.after_light_verb(pos) {
            return if lead { Role::Lead } else { Role::Verb };
        }
        if nominal {
            Role::Noun
        } else if lead {
            Role::Lead
        } else {
            Role::Verb
        }
    }

    /// Whether the action noun at `pos` is the object of a light verb:
    /// "give X a kick", "do a quick rollback", "trigger a deploy", "we need
    /// a restart" (a new one: "a", not "the").
    fn after_light_verb(&self, pos: usize) -> bool {
        let mut det = None;
        for k in (pos.saturating_sub(6)..pos).rev() {
            if self.punct[k] {
                return false;
            }
            let x = self.words[k];
            if det.is_none() && matches!(x, "a" | "an" | "another" | "the") {
                det = Some(x);
                continue;
            }
            if let Some(d) = det {
                if matches!(
                    x,
                    "give"
                        | "gimme"
                        | "do"
                        | "trigger"
                        | "run"
                        | "perform"
                        | "kick"
                        | "schedule"
                        | "request"
                        | "start"
                ) || (d != "the" && matches!(x, "need" | "needs" | "want" | "wants"))
                {
                    return true;
                }
            }
        }
        false
    }

    /// Evidence from the shape of the message, without a verb: versions
    /// aimed at an environment, counts of pods, resources with an
    /// environment, arrows between environments.
    fn shapes(&self, n: usize) -> Vec<Shape> {
        let mut out = Vec::new();
        let has_service = self.service(n).is_some();
        let trouble = (0..n).any(|i| self.is_word(i) && is_trouble_word(self.words[i]));
        let asks = self.words.contains(&"?");
        if !has_service || asks {
            return out;
        }
        let (from, to) = self.source_target(n);
        if let (Some(f), Some(t)) = (from, to) {
            if f != t {
                out.push(Shape {
                    kind: ActionKind::Promote,
                    weight: 2.5,
                    what: "two environments joined by an arrow or from … to",
                });
            }
        }
        // A statement ("X in prod is stale", "1.2.0 went to prod") or a
        // complaint is about what is, not a request for a change.
        let declarative = (0..n).any(|i| {
            self.is_word(i)
                && matches!(
                    self.words[i],
                    "is" | "are"
                        | "was"
                        | "were"
                        | "went"
                        | "got"
                        | "been"
                        | "made"
                        | "seems"
                        | "looks"
                        | "looked"
                        | "has"
                        | "had"
                )
        });
        if trouble || declarative {
            return out;
        }
        let is_marker = |w: &str| {
            matches!(
                w,
                "pls" | "please" | "plz" | "asap" | "now" | "go" | "thx" | "thanks" | "ty"
            )
        };
        // A request marker, or an everyday imperative verb opening the
        // message ("put X 1.4.0 on staging", "have X 2.0 in dev").
        let marker = (0..n).any(|i| self.is_word(i) && is_marker(self.words[i]))
            || self.first_content().is_some_and(|i| {
                matches!(
                    self.words[i],
                    "put" | "set" | "run" | "bring" | "have" | "make" | "let" | "lets" | "get"
                )
            });
        if let Some((at, _)) = self.version_at(n) {
            // "2.4.1 -> staging", "@1.9.0 to prod", "1.4.0 on staging pls".
            let mut j = at + 1;
            while j < n && self.punct[j] && matches!(self.words[j], "=" | "-") {
                j += 1;
            }
            // Only markers between the version and the end of the sentence:
            // a request for that version, its environment still to ask.
            let mut k = j;
            while k < n && self.is_word(k) && (is_marker(self.words[k]) || is_filler(self.words[k]))
            {
                k += 1;
            }
            let bare = marker && (k >= n || (self.punct[k] && self.words[k] != ">"));
            // "checkout-api prod -> 2.4.1": the version is where it goes.
            let target = self.word(at.wrapping_sub(1)) == ">" && !self.environments(n).is_empty();
            let aimed = target
                || matches!(self.word(j), ">" | "to" | "onto" | "into")
                || (matches!(self.word(j), "on" | "in") && marker)
                || bare;
            if aimed {
                out.push(Shape {
                    kind: ActionKind::Deploy,
                    weight: 2.0,
                    what: "a version aimed at an environment",
                });
            }
        }
        let counted = (0..n).any(|i| {
            self.is_word(i)
                && (self.words[i].bytes().all(|b| b.is_ascii_digit())
                    || number_word(self.words[i]).is_some())
                && is_replica_noun(self.word(i + 1))
                && self.word(i + 1) != "x"
        });
        if counted {
            out.push(Shape {
                kind: ActionKind::Scale,
                weight: 2.0,
                what: "a count of replicas or pods",
            });
        }
        let env = !self.environments(n).is_empty();
        let resources = !self.resources(0, n).is_empty();
        let env_noun = (0..n).any(|i| self.is_word(i) && is_env_noun(self.words[i]));
        let for_service = (1..n).any(|i| self.covered[i] && self.words[i - 1] == "for");
        let with_resource = self
            .resources(0, n)
            .iter()
            .any(|(p, _)| (1..=2).any(|k| *p >= k && matches!(self.words[p - k], "with" | "and")));
        if env
            && ((resources && (marker || for_service || with_resource))
                || (env_noun && (marker || for_service)))
        {
            out.push(Shape {
                kind: ActionKind::CreateEnvironment,
                weight: 1.5,
                what: "an environment with resources for a service",
            });
        }
        out
    }

    /// "can you do rollbacks?", "what can I ask you?", "list your
    /// commands": a question about Paver itself. No catalog service,
    /// environment or version is named, the message speaks to Paver, and
    /// no "it"/"this" stands for a thing to act on.
    fn capability_question(&self) -> bool {
        let n = self.words.len();
        if !self.exact.is_empty()
            || self.service(n).is_some()
            || !self.environments(n).is_empty()
            || self.version(n).is_some()
        {
            return false;
        }
        let has = |w: &str| self.words.contains(&w);
        let addressed = (0..n).any(|i| {
            // "thank you for the help" thanks; it asks nothing.
            (matches!(self.words[i], "you" | "u" | "your" | "ya")
                && self.word(i.wrapping_sub(1)) != "thank")
                || (matches!(self.words[i], "paver" | "bot")
                    && matches!(
                        self.word(i.wrapping_sub(1)),
                        "can" | "could" | "does" | "will" | "is"
                    ))
        });
        if !addressed || has("it") || has("this") || has("that") || has("them") {
            return false;
        }
        let ability = (0..n).any(|i| {
            matches!(
                self.words[i],
                "can"
                    | "could"
                    | "able"
                    | "support"
                    | "supports"
                    | "understand"
                    | "handle"
                    | "know"
                    | "commands"
                    | "capable"
                    | "capabilities"
                    | "features"
                    | "help"
                    | "talk"
                    | "use"
                    | "do"
                    | "does"
            )
        });
        // "can you tell me how to request access?" asks the platform; "do
        // you know how to restart things?" asks Paver.
        let platform_how = (0..n).any(|i| {
            self.words[i] == "how"
                && self.word(i.wrapping_sub(1)) != "know"
                && !(i + 1..n).any(|k| matches!(self.words[k], "you" | "u" | "paver"))
        });
        ability && !platform_how
    }

    fn is_help_request(&self, strong: &[&Hit]) -> bool {
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
                            | "halp"
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
        // "never mind", "scratch that": the writer took it back.
        let retracted = (0..n).any(|i| {
            matches!(self.words[i], "nevermind" | "nvm")
                || (self.words[i] == "never" && self.word(i + 1) == "mind")
                || (matches!(self.words[i], "scratch" | "ignore" | "cancel" | "forget")
                    && matches!(self.word(i + 1), "that" | "this" | "it" | "me"))
        });
        if retracted {
            return unsure(Action::Nothing);
        }
        // "ok the deploy worked, thanks!", "the rollback saved us": talk
        // about what happened, not a request.
        let grateful = (0..n).any(|i| self.is_word(i) && is_gratitude(self.words[i]));
        let told = (0..n).any(|i| {
            matches!(
                self.words[i],
                "went" | "was" | "is" | "worked" | "works" | "saved" | "done" | "fixed"
            )
        });
        if grateful && !self.words.contains(&"?") && (self.exact.is_empty() || told) {
            // Sure: thanks for what happened, no request verb — a model
            // asked to reread "the deploy of X 5.1.0 went fine, thanks"
            // proposed that deploy.
            return sure(Action::Nothing);
        }
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
        // "why …", and "what does X mean?": a question about words or
        // reasons, for the docs.
        let defines = (0..n).any(|i| {
            matches!(
                self.words[i],
                "mean" | "means" | "meaning" | "definition" | "defined"
            ) || (self.words[i] == "stand" && self.word(i + 1) == "for")
        });
        // "should I roll back X?", "is it ok if I promote X?", "what
        // happens if I restart X?", "where are the logs for X?": advice and
        // the platform's ways, for the docs and the platform team.
        let advice = (0..n).any(|i| {
            let w = self.words[i];
            matches!(
                w,
                "if" | "whether" | "safe" | "allowed" | "happens" | "happen" | "recommended"
            ) || (w == "should" && matches!(self.word(i + 1), "i" | "we"))
                || (matches!(w, "ok" | "okay" | "fine") && self.word(i.wrapping_sub(1)) == "it")
                || is_platform_word(w)
                    && !matches!(
                        w,
                        "deploy"
                            | "deployment"
                            | "failing"
                            | "failed"
                            | "broken"
                            | "stuck"
                            | "error"
                            | "errors"
                    )
        });
        if first == "why" || defines || advice {
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
        let key = (end.min(self.words.len()), self.focus.get());
        if let Some((_, m)) = self.services.borrow().iter().find(|(k, _)| *k == key) {
            return m.clone();
        }
        let m = self.find_service(end);
        self.services.borrow_mut().push((key, m.clone()));
        m
    }

    fn find_service(&self, end: usize) -> Option<ServiceMatch> {
        let focus = self.focus.get();
        let after = self.exact.iter().find(|(p, _, _)| *p >= focus && *p < end);
        let before = self
            .exact
            .iter()
            .rev()
            .find(|(p, _, _)| *p < focus.min(end));
        if let Some((_, _, name)) = after.or(before) {
            return Some(ServiceMatch::Exact(name.clone()));
        }
        let mut fuzzy = None;
        let mut ambiguous = None;
        let mut unknown = None;
        let words = self.word_matches();
        for (_, m) in words.iter().filter(|(p, _)| *p < end) {
            match m {
                ServiceMatch::Fuzzy(name) => {
                    fuzzy.get_or_insert(name.clone());
                }
                ServiceMatch::Ambiguous(c) => {
                    ambiguous.get_or_insert(c.clone());
                }
                ServiceMatch::Unknown(c) => {
                    unknown.get_or_insert(c.clone());
                }
                ServiceMatch::Exact(_) => {}
            }
        }
        fuzzy
            .map(ServiceMatch::Fuzzy)
            .or(ambiguous.map(ServiceMatch::Ambiguous))
            .or(unknown.map(ServiceMatch::Unknown))
    }

    /// What each word not already a catalog name could be: a prefix, part
    /// or typo of one name, several names, or an unknown name's nearest.
    /// Found once per message (the catalog lookups are the costly part).
    fn find_word_matches(&self) -> Vec<(usize, ServiceMatch)> {
        let mut out = Vec::new();
        for i in 0..self.words.len() {
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
                out.push((
                    i,
                    match self.index.typo(w) {
                        Ok(name) => ServiceMatch::Fuzzy(name),
                        Err(near) => ServiceMatch::Unknown(near),
                    },
                ));
                continue;
            }
            if is_common(w) || w.bytes().any(|b| b.is_ascii_digit()) {
                continue;
            }
            // "odrer service": the word and a service noun, joined.
            let next = self.word(i + 1);
            if is_service_noun(next) {
                if let Ok(name) = self.index.typo(&format!("{w}-{next}")) {
                    out.push((i, ServiceMatch::Fuzzy(name)));
                    continue;
                }
            }
            let partial = self.index.partial(w);
            match partial.len() {
                0 => {
                    if let Ok(name) = self.index.typo(w) {
                        out.push((i, ServiceMatch::Fuzzy(name)));
                    }
                }
                1 => out.push((
                    i,
                    ServiceMatch::Fuzzy(partial.into_iter().next().expect("one")),
                )),
                _ => out.push((i, ServiceMatch::Ambiguous(partial))),
            }
        }
        out
    }

    fn environments(&self, end: usize) -> Vec<(usize, Environment)> {
        self.envs
            .get_or_init(|| self.find_environments())
            .iter()
            .copied()
            .filter(|(p, _)| *p < end)
            .collect()
    }

    fn find_environments(&self) -> Vec<(usize, Environment)> {
        let end = self.words.len();
        let mut out = Vec::new();
        let mut i = 0;
        while i < end {
            if !self.is_word(i) || self.covered[i] {
                i += 1;
                continue;
            }
            match environment_at(&self.words, i) {
                Some((env, len)) if self.in_environment_place(i) => {
                    out.push((i, env));
                    i += len;
                }
                Some(_) => i += 1,
                None => {
                    let w = self.words[i];
                    if let Some(env) = typo_environment(w) {
                        if !is_common(w) && self.index.partial(w).is_empty() {
                            out.push((i, env));
                        }
                    }
                    i += 1;
                }
            }
        }
        out
    }

    /// Whether an environment word at `i` names an environment here. The
    /// everyday ones ("test", "stage", "live", "temp") do only in an
    /// environment's place: before "env", after "to/in/on" when no object
    /// follows ("to test my change" is a verb), not after "this"/"go".
    fn in_environment_place(&self, i: usize) -> bool {
        let w = self.words[i];
        if !is_ambiguous_env_word(w) {
            return true;
        }
        let prev = self.word(i.wrapping_sub(1));
        let next = self.word(i + 1);
        if is_env_noun(next) {
            return true;
        }
        if matches!(
            prev,
            "this"
                | "that"
                | "which"
                | "what"
                | "next"
                | "early"
                | "late"
                | "every"
                | "each"
                | "any"
                | "one"
                | "a"
                | "go"
                | "goes"
                | "went"
                | "going"
                | "unit"
                | "load"
                | "smoke"
                | "integration"
                | "e2e"
        ) {
            return false;
        }
        // In a verb's place ("to test something", "we test it") it is the
        // verb unless the phrase ends there.
        let verb_place = matches!(
            prev,
            "to" | "i" | "we" | "you" | "would" | "will" | "can" | "must" | "should"
        ) && self.is_word(i + 1)
            && !is_env_noun(next)
            && !matches!(
                next,
                "for"
                    | "with"
                    | "and"
                    | "or"
                    | "please"
                    | "pls"
                    | "plz"
                    | "now"
                    | "asap"
                    | "too"
                    | "then"
                    | "env"
                    | "instead"
                    | "today"
                    | "first"
                    | "also"
            );
        if verb_place {
            return false;
        }
        if matches!(
            next,
            "suite"
                | "suites"
                | "run"
                | "runs"
                | "case"
                | "cases"
                | "failed"
                | "failing"
                | "fails"
                | "passes"
                | "passed"
                | "coverage"
                | "results"
                | "data"
                | "it"
                | "this"
                | "that"
                | "my"
                | "our"
                | "your"
                | "the"
                | "a"
                | "an"
                | "them"
                | "if"
                | "whether"
                | "out"
                | "things"
                | "stuff"
                | "with"
                | "of"
        ) {
            return false;
        }
        true
    }

    /// The environment a clause names; one after "to/in/on" wins over one
    /// that merely appears ("the staging db of X in prod" is about prod).
    fn environment(&self, end: usize) -> Option<Environment> {
        let envs = self.environments(end);
        if let Some(c) = self.correction_at(end) {
            if let Some((_, e)) = envs.iter().find(|(p, _)| *p > c) {
                return Some(*e);
            }
        }
        let is_targeted = |p: usize| {
            matches!(
                self.word(p.wrapping_sub(1)),
                "to" | "in" | "on" | "into" | "onto" | ">"
            ) || matches!(self.word(p.wrapping_sub(2)), "to" | "in" | "on" | "into")
                && self.word(p.wrapping_sub(1)) == "the"
        };
        let focus = self.focus.get();
        let targeted = envs
            .iter()
            .find(|(p, _)| *p >= focus && is_targeted(*p))
            .or_else(|| envs.iter().find(|(p, _)| is_targeted(*p)));
        // Then one named as an environment ("a fresh staging env"), then
        // any but a mere reference ("anywhere near prod", "more than dev").
        let named = envs.iter().find(|(p, _)| is_env_noun(self.word(p + 1)));
        let referenced =
            |p: usize| matches!(self.word(p.wrapping_sub(1)), "near" | "than" | "like");
        let plain = envs.iter().find(|(p, _)| !referenced(*p));
        targeted
            .or(named)
            .or(plain)
            .or(envs.first())
            .map(|(_, e)| *e)
    }

    /// Where a promotion goes from and to: "from X", "out of X", "X → Y",
    /// "X to Y"; "to/into Y", "→ Y".
    fn source_target(&self, end: usize) -> (Option<Environment>, Option<Environment>) {
        let envs = self.environments(end);
        let before = |p: usize, words: &[&str]| {
            let prev = self.word(p.wrapping_sub(1));
            let prev2 = self.word(p.wrapping_sub(2));
            words.contains(&prev) || (prev == "the" && words.contains(&prev2))
        };
        let out_of = |p: usize| {
            self.word(p.wrapping_sub(1)) == "of" && self.word(p.wrapping_sub(2)) == "out"
        };
        // Two environments with only an arrow or "to" between them.
        let pair = envs.windows(2).find_map(|w| {
            let ((a, ea), (b, eb)) = (w[0], w[1]);
            let between: Vec<&str> = (a + 1..b).map(|k| self.words[k]).collect();
            let joined = !between.is_empty()
                && between.iter().all(|x| {
                    matches!(
                        *x,
                        ">" | "=" | "-" | "to" | "into" | "onto" | "env" | "environment" | "the"
                    )
                })
                && between
                    .iter()
                    .any(|x| matches!(*x, ">" | "to" | "into" | "onto"));
            (joined && ea != eb).then_some((ea, eb))
        });
        let from = envs
            .iter()
            .find(|(p, _)| before(*p, &["from"]) || out_of(*p))
            .map(|(_, e)| *e);
        let to = envs
            .iter()
            .find(|(p, _)| before(*p, &["to", "into", "onto", ">"]))
            .map(|(_, e)| *e);
        match (from, pair) {
            (None, Some((a, b))) => (Some(a), Some(b)),
            _ => (from, to),
        }
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

    /// The first version-shaped word in the clause and where it stands.
    fn version_at(&self, end: usize) -> Option<(usize, Version)> {
        let all = self.versions(end);
        let focus = self.focus.get();
        let after = all.iter().position(|(p, _)| *p >= focus);
        match after {
            Some(i) => all.into_iter().nth(i),
            None => all.into_iter().next(),
        }
    }

    /// Every version-shaped word in the clause, in order.
    fn versions(&self, end: usize) -> Vec<(usize, Version)> {
        let mut out = Vec::new();
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
            if dotted || v_number || tagged || looks_like_commit(w) {
                if let Ok(v) = Version::parse(w) {
                    out.push((i, v));
                }
            }
        }
        out
    }

    /// The version a rollback returns to: one the writer aims at ("to
    /// 2.3.9", "back to 4.0.9", "we want 5.0.3 back"), never the broken
    /// one ("2.4.0 is broken", "from 2.4.0", "back out 2.4.0"). Without an
    /// aimed version a rollback goes to the previous release.
    fn rollback_version(&self, end: usize) -> Option<Version> {
        self.versions(end).into_iter().find_map(|(i, v)| {
            let mut k = i;
            // "to version 1.2", "to v1.2", "to the 1.2 release".
            while k > 0
                && matches!(
                    self.words[k - 1],
                    "version" | "release" | "tag" | "the" | "@" | "build"
                )
            {
                k -= 1;
            }
            let prev = self.word(k.wrapping_sub(1));
            let aimed =
                matches!(prev, "to" | "onto" | ">") || matches!(self.word(i + 1), "back" | "again");
            aimed.then_some(v)
        })
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
                if matches!(
                    self.word(i + 1),
                    "more" | "extra" | "additional" | "fewer" | "less"
                ) {
                    continue;
                }
                if is_replica_noun(self.word(i + 1))
                    || self.words[i].ends_with('x') && self.words[i].len() > 1
                {
                    return Some(n);
                }
            }
        }
        // "by 2", "3 more", "2 extra" are relative to a count we do not know.
        let relative = |i: usize| {
            self.word(i.wrapping_sub(1)) == "by"
                || matches!(
                    self.word(i + 1),
                    "more" | "extra" | "additional" | "fewer" | "less"
                )
        };
        for i in 0..end {
            if let Some(n) = number(i) {
                let prev = self.word(i.wrapping_sub(1));
                if relative(i) {
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
        self.resource_comes_first(after, end, false)
    }

    /// Whether a resource is named before any environment after `after`;
    /// with `past_place`, an environment said as a place ("in dev", "on
    /// staging") does not count.
    fn resource_comes_first(&self, after: usize, end: usize, past_place: bool) -> bool {
        let first_resource = self.resources(after, end).first().map(|(p, _)| *p);
        let first_env_noun = (after..end.min(self.words.len()))
            .find(|&i| self.is_word(i) && !self.covered[i] && is_env_noun(self.words[i]));
        let place =
            |p: usize| past_place && p > 0 && matches!(self.word(p - 1), "in" | "on" | "at");
        let first_env_word = self
            .environments(end)
            .into_iter()
            .map(|(p, _)| p)
            .find(|&p| p >= after && !place(p));
        let first_env = match (first_env_noun, first_env_word) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
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
        let any_env = !self.environments(end).is_empty()
            || (0..end.min(self.words.len()))
                .any(|i| self.is_word(i) && !self.covered[i] && is_env_noun(self.words[i]));
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
            // "called X", "name it X", "call it X", and "a go svc pls: X"
            // (a service noun shortly before a colon).
            let marker = matches!(w, "called" | "named")
                || (w == "name" && !self.punct[i])
                || (w == "call" && self.word(i + 1) == "it")
                || (w == ":"
                    && (1..=3).any(|k| {
                        i >= k
                            && is_service_noun(self.word(i - k))
                            && (i - k + 1..i).all(|m| is_filler(self.words[m]))
                    }));
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
        // "restart order-service, order-worker in staging": one action,
        // one service.
        if let Some(both) = self.service_conflict(end) {
            return Err(unsure(Action::clarify(
                intent,
                vec![Field::Service],
                both.iter().map(|s| s.as_str().to_owned()).collect(),
            )));
        }
        // "restart X in stg and dev", "deploy X to staging and prod": one
        // action cannot have two targets, so ask.
        if let Some(others) = self.environment_conflict(end) {
            return Err(unsure(Action::clarify(
                intent,
                vec![Field::Environment],
                others.iter().map(|e| e.as_str().to_owned()).collect(),
            )));
        }
        match env {
            Some(e) => Ok((service, e, !fuzzy)),
            None => Err(unsure(Action::clarify(
                intent,
                vec![Field::Environment],
                vec![],
            ))),
        }
    }

    /// Services named side by side ("X, Y", "X and Y", "X or Y") in one
    /// clause: the distinct ones.
    fn service_conflict(&self, end: usize) -> Option<Vec<ServiceName>> {
        let named: Vec<&(usize, usize, ServiceName)> =
            self.exact.iter().filter(|(p, _, _)| *p < end).collect();
        let joined = named.windows(2).any(|w| {
            let (a, alen, ref sa) = *w[0];
            let (b, _, ref sb) = *w[1];
            sa != sb
                && b > a + alen
                && (a + alen..b).all(|k| matches!(self.words[k], "," | "and" | "or" | "/"))
        });
        joined.then(|| {
            let mut v: Vec<ServiceName> = Vec::new();
            for (_, _, s) in named {
                if !v.contains(s) {
                    v.push(s.clone());
                }
            }
            v
        })
    }

    /// Where a correction starts ("…, no wait, to dev", "actually dev",
    /// "I mean prod"): what follows replaces what came before.
    fn correction_at(&self, end: usize) -> Option<usize> {
        (0..end.min(self.words.len())).rev().find(|&i| {
            let w = self.words[i];
            w == "actually"
                || (w == "wait" && matches!(self.word(i.wrapping_sub(1)), "no" | "oh" | "oops"))
                || (w == "mean" && self.word(i.wrapping_sub(1)) == "i")
                || (w == "sorry" && i > 0)
        })
    }

    /// Environments aimed at ("to/in/on/into X") in a clause that names more
    /// than one and does not correct itself: the distinct ones, in order.
    fn environment_conflict(&self, end: usize) -> Option<Vec<Environment>> {
        if self.correction_at(end).is_some() {
            return None;
        }
        let all = self.environments(end);
        // The verb's own environments when it has some ("once X is on qa,
        // restart Y on dev" is about dev).
        let focus = self.focus.get();
        let envs: Vec<(usize, Environment)> = if all.iter().any(|(p, _)| *p >= focus) {
            all.into_iter().filter(|(p, _)| *p >= focus).collect()
        } else {
            all
        };
        let negated = |p: usize| (1..=2).any(|k| p >= k && is_negation(self.words[p - k]));
        let aimed: Vec<(usize, Environment)> = envs
            .iter()
            .copied()
            .filter(|(p, _)| {
                !negated(*p)
                    && (matches!(self.word(p.wrapping_sub(1)), "to" | "in" | "on" | "into" | "onto" | ">")
                        // "in stg and dev": the second of a pair joined by and/or/"&".
                        || matches!(self.word(p.wrapping_sub(1)), "and" | "or")
                            && envs.iter().any(|(q, _)| q + 2 == *p))
            })
            .collect();
        let mut distinct: Vec<Environment> = Vec::new();
        for (_, e) in aimed {
            if !distinct.contains(&e) {
                distinct.push(e);
            }
        }
        (distinct.len() > 1).then_some(distinct)
    }

    fn env_action(
        &self,
        intent: ActionKind,
        end: usize,
        build: impl FnOnce(ServiceName, Environment) -> Action,
    ) -> Parsed {
        match self.service_env(intent, end) {
            Ok((s, e, is_sure)) => parsed(build(s, e), is_sure),
            Err(p) => p,
        }
    }

    fn create_or_add(&self, after: usize, end: usize) -> Parsed {
        self.create_or_add_as(self.object_is_resource(after, end), end)
    }

    fn add_resource(&self, end: usize) -> Parsed {
        self.create_or_add_as(true, end)
    }

    fn create_or_add_as(&self, add: bool, end: usize) -> Parsed {
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
                parsed(action, is_sure)
            }
            Err(p) => p,
        }
    }

    /// "the previous version", "the last good release", "the old build".
    fn names_previous_release(&self, after: usize, end: usize) -> bool {
        let end = end.min(self.words.len());
        (after..end).any(|i| {
            matches!(
                self.words[i],
                "previous" | "prior" | "old" | "older" | "earlier"
            ) || (self.words[i] == "last"
                && matches!(self.word(i + 1), "good" | "working" | "stable" | "known"))
        }) && (after..end).any(|i| {
            matches!(
                self.words[i],
                "version" | "release" | "build" | "image" | "tag"
            )
        })
    }

    /// "kill cart-service pods in dev": the verb's object is the running
    /// copies, not the environment.
    fn object_is_pods(&self, after: usize, end: usize) -> bool {
        let end = end.min(self.words.len());
        let pods = (after..end).find(|&i| {
            matches!(
                self.words[i],
                "pods" | "pod" | "containers" | "container" | "instances"
            )
        });
        let env_noun = (after..end).find(|&i| is_env_noun(self.words[i]));
        match (pods, env_noun) {
            (Some(p), Some(e)) => p < e,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// "add a staging env for X": the verb's first object is an
    /// environment, not a resource.
    fn object_is_environment(&self, after: usize, end: usize) -> bool {
        !self.object_is_resource(after, end)
            && (after..end.min(self.words.len()))
                .any(|i| is_env_noun(self.word(i)) && (after..i).all(|k| !self.punct[k]))
    }

    fn deploy_like(&self, intent: ActionKind, end: usize) -> Parsed {
        let version = if intent == ActionKind::Rollback {
            self.rollback_version(end)
        } else {
            self.version(end)
        };
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
            // One environment, unmarked ("promote X staging"): production
            // can only be the target and dev only the source; anything else
            // could be either, so ask.
            (None, None) => match self.environments(end).as_slice() {
                [(_, Environment::Production)] => {
                    (Some(Environment::Staging), Some(Environment::Production))
                }
                [(_, Environment::Dev)] => (Some(Environment::Dev), Some(Environment::Staging)),
                [] => (None, None),
                _ => (None, None),
            },
        };
        match (from, to) {
            (Some(from), Some(to)) if from != to => {
                parsed(Action::Promote { service, from, to }, !fuzzy)
            }
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
        if replicas.is_none() && self.environment(end).is_none() {
            if let Some(ServiceMatch::Exact(_) | ServiceMatch::Fuzzy(_)) = self.service(end) {
                return unsure(Action::clarify(
                    ActionKind::Scale,
                    vec![Field::Environment, Field::Replicas],
                    vec![],
                ));
            }
        }
        match self.service_env(ActionKind::Scale, end) {
            Ok((service, environment, is_sure)) => match replicas {
                Some(replicas) => parsed(
                    Action::Scale {
                        service,
                        environment,
                        replicas,
                    },
                    is_sure,
                ),
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
                        || matches!(self.word(i + 1), "template" | "stack")
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

/// Confidence of a parse the parser has no doubt about.
const SURE: f32 = 0.9;
/// Confidence of a parse it would rather have checked.
const UNSURE: f32 = 0.4;
/// How far the best request must lead the next one argued by a verb;
/// closer than this, the parser asks which was meant.
const MARGIN: f32 = 1.0;

fn parsed(action: Action, is_sure: bool) -> Parsed {
    Parsed {
        action,
        sure: is_sure,
        confidence: if is_sure { SURE } else { UNSURE },
    }
}

fn sure(action: Action) -> Parsed {
    parsed(action, true)
}

fn unsure(action: Action) -> Parsed {
    parsed(action, false)
}

/// The builder's answer with the confidence the evidence gives it: sure
/// only when both the fields and the evidence are.
fn with_confidence(p: Parsed, confidence: f32) -> Parsed {
    let confidence = if p.sure {
        confidence
    } else {
        confidence.min(UNSURE)
    };
    Parsed {
        sure: p.sure && confidence >= Parsed::SURE_AT,
        confidence,
        action: p.action,
    }
}

/// A regular past form of a verb ("deployed", "rolled").
fn is_past_form(w: &str) -> bool {
    (w.len() > 4 && w.ends_with("ed") && !matches!(w, "need" | "shed" | "seed" | "speed"))
        || matches!(w, "took" | "brought" | "went" | "did" | "ran" | "made")
}

/// A commit hash (7 to 40 hex digits, with letters and digits both): what
/// `deploy X at 7f3e9a1` names.
fn looks_like_commit(w: &str) -> bool {
    (7..=40).contains(&w.len())
        && w.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && w.bytes().any(|b| b.is_ascii_digit())
        && w.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Where a cue stands, which sets its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Opens the message or a sentence (after politeness): the request.
    Lead,
    /// A verb further in.
    Verb,
    /// A topic: "the deploy", "yesterday's release", "the rollout of".
    Noun,
    /// "no rollback", "don't deploy".
    Negated,
    /// "deploy can wait", "restart it later".
    Deferred,
    /// "the new release": "new" not about an environment or a service.
    Adjective,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Lead => "leads the request",
            Role::Verb => "verb",
            Role::Noun => "topic (noun)",
            Role::Negated => "negated",
            Role::Deferred => "deferred",
            Role::Adjective => "adjective",
        }
    }
}

/// One cue in a message and what it weighs.
#[derive(Debug, Clone, Copy)]
struct Hit {
    pos: usize,
    cue: Cue,
    len: usize,
    role: Role,
    /// Read from a misspelt word.
    typo: bool,
    /// In a later sentence than an earlier request: the first request is
    /// the message's.
    later: bool,
    /// A noun that is a cue by itself ("replicas").
    noun_cue: bool,
}

impl Hit {
    fn weight(&self) -> f32 {
        let base = match self.role {
            Role::Lead if self.noun_cue => 1.5,
            Role::Verb if self.noun_cue => 1.5,
            Role::Lead => 3.0,
            Role::Verb => 2.0,
            Role::Noun => 0.5,
            Role::Negated | Role::Deferred | Role::Adjective => 0.0,
        };
        let typo = if self.typo { 0.8 } else { 1.0 };
        let later = if self.later { 0.5 } else { 1.0 };
        base * typo * later
    }
}

/// Evidence from a message's shape rather than a word.
#[derive(Debug, Clone, Copy)]
struct Shape {
    kind: ActionKind,
    weight: f32,
    what: &'static str,
}

/// Each reading's score.
#[derive(Debug, Clone, Default)]
struct Scores([f32; ActionKind::ALL.len()]);

impl Scores {
    fn slot(kind: ActionKind) -> usize {
        ActionKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is in ALL")
    }
    fn add(&mut self, kind: ActionKind, w: f32) {
        self.0[Self::slot(kind)] += w;
    }
    fn get(&self, kind: ActionKind) -> f32 {
        self.0[Self::slot(kind)]
    }
    /// How sure the evidence makes `best`: its strength (a leading verb is
    /// full strength) times its lead over the next change argued for.
    fn confidence(&self, best: ActionKind) -> f32 {
        let b = self.get(best);
        let second = ActionKind::ALL
            .iter()
            .filter(|k| **k != best && k.is_mutating())
            .map(|k| self.get(*k))
            .fold(0.0, f32::max);
        let strength = (b / 3.0).min(1.0);
        let lead = ((b - second) / 2.0).clamp(0.0, 1.0);
        strength * (0.4 + 0.6 * lead)
    }
    fn nonzero(&self) -> Vec<(ActionKind, f32)> {
        let mut v: Vec<(ActionKind, f32)> = ActionKind::ALL
            .iter()
            .map(|k| (*k, self.get(*k)))
            .filter(|(_, s)| *s > 0.0)
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

/// What `paver parse --explain` prints: how the rules parser read a
/// message.
#[derive(Debug, Clone, Default)]
pub struct Explanation {
    /// The text after markup was stripped.
    pub cleaned: String,
    /// Each cue: its words, what it argues for, its role and its weight.
    pub cues: Vec<CueNote>,
    /// Evidence from the message's shape: the reading, its weight, what.
    pub shapes: Vec<(ActionKind, f32, String)>,
    /// The readings' scores, best first.
    pub readings: Vec<(ActionKind, f32)>,
    /// What decided.
    pub decided: String,
    pub parsed: Option<Parsed>,
}

#[derive(Debug, Clone)]
pub struct CueNote {
    pub words: String,
    pub cue: &'static str,
    pub role: &'static str,
    pub weight: f32,
    pub typo: bool,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "text        {}", self.cleaned)?;
        if self.cues.is_empty() {
            writeln!(f, "cues        (none)")?;
        }
        for c in &self.cues {
            writeln!(
                f,
                "cue         \"{}\" -> {} ({}{}), weight {:.1}",
                c.words,
                c.cue,
                c.role,
                if c.typo { ", read from a typo" } else { "" },
                c.weight
            )?;
        }
        for (k, w, what) in &self.shapes {
            writeln!(f, "shape       {what} -> {k}, weight {w:.1}")?;
        }
        if !self.readings.is_empty() {
            let r: Vec<String> = self
                .readings
                .iter()
                .map(|(k, s)| format!("{k} {s:.1}"))
                .collect();
            writeln!(f, "readings    {}", r.join(", "))?;
        }
        writeln!(f, "decided by  {}", self.decided)?;
        if let Some(p) = &self.parsed {
            writeln!(
                f,
                "confidence  {:.2} ({})",
                p.confidence,
                if p.sure {
                    "sure"
                } else {
                    "unsure: a candidate, checked before acting"
                }
            )?;
            let json = serde_json::to_string(&p.action).unwrap_or_default();
            writeln!(f, "action      {json}")?;
        }
        Ok(())
    }
}

/// Collects an explanation when asked for one; costs nothing otherwise.
struct Trace(Option<Box<Explanation>>);

impl Trace {
    fn off() -> Self {
        Trace(None)
    }
    fn on() -> Self {
        Trace(Some(Box::default()))
    }
    fn cue(&mut self, m: &Message<'_>, h: &Hit) {
        if let Some(e) = &mut self.0 {
            e.cues.push(CueNote {
                words: m.span(h.pos, h.len),
                cue: h.cue.as_str(),
                role: if h.later {
                    "in a later sentence"
                } else {
                    h.role.as_str()
                },
                weight: h.weight(),
                typo: h.typo,
            });
        }
    }
    fn evidence(&mut self, kind: ActionKind, weight: f32, what: &str) {
        if let Some(e) = &mut self.0 {
            e.shapes.push((kind, weight, what.to_owned()));
        }
    }
    fn scores(&mut self, s: &Scores) {
        if let Some(e) = &mut self.0 {
            e.readings = s.nonzero();
        }
    }
    fn decided(&mut self, why: &str) {
        if let Some(e) = &mut self.0 {
            e.decided = why.to_owned();
        }
    }
    fn into_explanation(self) -> Explanation {
        self.0.map(|b| *b).unwrap_or_default()
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
            | "runbook"
            | "runbooks"
            | "playbook"
            | "approval"
            | "approvals"
            | "policy"
    )
}

#[cfg(test)]
mod tests {
    //! One test per class of miss seen on chat-style requests (issue 16),
    //! each with phrasings written from the contract.

    use std::path::Path;

    use serde_json::{json, Value};

    use super::*;

    fn parser() -> RulesParser {
        let catalog = Catalog::from_yaml_file(Path::new("../shared/fixtures/catalog.yaml"))
            .expect("sample catalog");
        RulesParser::new(&catalog)
    }

    fn read(p: &RulesParser, text: &str) -> Value {
        serde_json::to_value(p.parse(text).action).expect("actions serialize")
    }

    fn check(p: &RulesParser, cases: &[(&str, Value)]) {
        let mut wrong = Vec::new();
        for (text, want) in cases {
            let got = read(p, text);
            if &got != want {
                wrong.push(format!("{text}\n   got  {got}\n   want {want}"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    fn kind(v: &Value) -> ActionKind {
        ActionKind::from_name(v["action"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn verbless_requests_are_read_from_their_shape() {
        let p = parser();
        check(
            &p,
            &[
                (
                    "billing-api staging with redis and kafka please",
                    json!({"action": "create_environment", "service": "billing-api",
                           "environment": "staging", "resources": ["redis", "kafka"]}),
                ),
                (
                    "fraud-detector preview env w/ mongo",
                    json!({"action": "create_environment", "service": "fraud-detector",
                           "environment": "preview", "resources": ["mongodb"]}),
                ),
                (
                    "user-service 3.1.0 -> prod",
                    json!({"action": "deploy", "service": "user-service",
                           "environment": "production", "version": "3.1.0"}),
                ),
                (
                    "search-api@2.0.1 to stg please",
                    json!({"action": "deploy", "service": "search-api",
                           "environment": "staging", "version": "2.0.1"}),
                ),
                (
                    "4 pods for billing-api on prod pls",
                    json!({"action": "scale", "service": "billing-api",
                           "environment": "production", "replicas": 4}),
                ),
                (
                    "email-sender 1.2.0 please",
                    json!({"action": "clarify", "missing": ["environment"]}),
                ),
                (
                    "checkout-api staging?",
                    json!({"action": "status", "service": "checkout-api", "environment": "staging"}),
                ),
            ],
        );
        // A complaint naming a version is not a deploy of it.
        for text in [
            "checkout-api 2.4.0 is broken in prod",
            "search-api 1.2.0 on staging is throwing errors",
        ] {
            assert!(!kind(&read(&p, text)).is_mutating(), "{text}");
        }
        // A commit is a version too.
        assert_eq!(
            read(&p, "deploy cart-service at 3fa9c1e to qa"),
            json!({"action": "deploy", "service": "cart-service",
                   "environment": "staging", "version": "3fa9c1e"})
        );
        // Read from shape alone, a change is only a candidate.
        assert!(!p.parse("user-service 3.1.0 -> prod").sure);
    }

    #[test]
    fn arrows_and_pairs_of_environments_promote() {
        let p = parser();
        let promote = |s: &str, from: &str, to: &str| json!({"action": "promote", "service": s, "from": from, "to": to});
        check(
            &p,
            &[
                (
                    "billing-api qa -> live",
                    promote("billing-api", "staging", "production"),
                ),
                (
                    "user-service: dev ⇒ stg",
                    promote("user-service", "dev", "staging"),
                ),
                (
                    "promote auth-service stg → prod",
                    promote("auth-service", "staging", "production"),
                ),
                (
                    "could you move cart-service out of dev",
                    promote("cart-service", "dev", "staging"),
                ),
                (
                    "can we get search-api from qa into live please",
                    promote("search-api", "staging", "production"),
                ),
                (
                    "fraud-detector dev to staging pls",
                    promote("fraud-detector", "dev", "staging"),
                ),
            ],
        );
        // One unmarked environment that could be either end: ask.
        assert_eq!(
            read(&p, "promote order-service staging")["action"],
            "clarify"
        );
    }

    #[test]
    fn undo_idioms_roll_back() {
        let p = parser();
        let rollback =
            |s: &str, e: &str| json!({"action": "rollback", "service": s, "environment": e});
        check(
            &p,
            &[
                (
                    "roll billing-api back in staging",
                    rollback("billing-api", "staging"),
                ),
                (
                    "the release of cart-service on stg is bad, revert it",
                    rollback("cart-service", "staging"),
                ),
                (
                    "yank auth-service from live",
                    rollback("auth-service", "production"),
                ),
                (
                    "the deploy of order-worker to qa broke checkout, undo it",
                    rollback("order-worker", "staging"),
                ),
                (
                    "the new fraud-detector build on prod is erroring, could you roll it back",
                    rollback("fraud-detector", "production"),
                ),
                (
                    "unship search-indexer in dev",
                    rollback("search-indexer", "dev"),
                ),
                (
                    "please take user-service on prod back to 3.0.0",
                    json!({"action": "rollback", "service": "user-service",
                           "environment": "production", "version": "3.0.0"}),
                ),
                (
                    "payment-service staging: back to the previous release pls",
                    rollback("payment-service", "staging"),
                ),
                (
                    "heads-up, the new cart-service build on prod is throwing errors. can you roll it back?",
                    rollback("cart-service", "production"),
                ),
                (
                    "redeploy the previous version of search-api on qa",
                    rollback("search-api", "staging"),
                ),
            ],
        );
    }

    #[test]
    fn a_rollback_never_targets_the_broken_version() {
        let p = parser();
        let to = |s: &str, e: &str, v: &str| json!({"action": "rollback", "service": s, "environment": e, "version": v});
        let prev = |s: &str, e: &str| json!({"action": "rollback", "service": s, "environment": e});
        check(
            &p,
            &[
                (
                    "search-api 1.4.0 is failing in prod, roll back",
                    prev("search-api", "production"),
                ),
                (
                    "roll back auth-service in prod, 3.3.0 leaks memory",
                    prev("auth-service", "production"),
                ),
                (
                    "undo 1.2.0 of billing-api on dev",
                    prev("billing-api", "dev"),
                ),
                (
                    "back out 0.9.1 of catalog-api on staging",
                    prev("catalog-api", "staging"),
                ),
                (
                    "revert order-worker on staging from 2.1.0 to 2.0.5",
                    to("order-worker", "staging", "2.0.5"),
                ),
                (
                    "2.2.0 is bad on stg for user-service, go back to 2.1.9",
                    to("user-service", "staging", "2.1.9"),
                ),
                (
                    "revert cart-service in prod, we want 1.7.2 back",
                    to("cart-service", "production", "1.7.2"),
                ),
            ],
        );
    }

    #[test]
    fn a_new_service_without_create_or_scaffold() {
        let p = parser();
        let svc =
            |n: &str, t: &str| json!({"action": "scaffold_service", "name": n, "template": t});
        check(
            &p,
            &[
                (
                    "start a python service named ml-scorer",
                    svc("ml-scorer", "python-service"),
                ),
                (
                    "kick off a new go svc: ledger-sync",
                    svc("ledger-sync", "go-service"),
                ),
                (
                    "new node app pls: promo-banner",
                    svc("promo-banner", "node-service"),
                ),
                (
                    "want a rust service, call it key-broker",
                    svc("key-broker", "rust-service"),
                ),
            ],
        );
        // "kick" is still a restart with a service and an environment.
        assert_eq!(read(&p, "kick cart-service in dev")["action"], "restart");
    }

    #[test]
    fn capability_questions_are_help_and_platform_questions_ask() {
        let p = parser();
        for text in [
            "can you restart services?",
            "is paver able to promote things?",
            "what commands do you understand?",
            "do you know how to create environments?",
            "what kind of stuff can you do for me",
            "list your commands",
        ] {
            assert_eq!(read(&p, text), json!({"action": "help"}), "{text}");
        }
        for text in [
            "how do I roll back a release?",
            "what does the has-oncall check mean?",
            "how can we get a bigger database in production?",
        ] {
            assert_eq!(read(&p, text)["action"], "ask", "{text}");
        }
        // Naming a service makes it a request, however politely asked.
        assert_eq!(
            read(&p, "can you deploy checkout-api to prod?")["action"],
            "deploy"
        );
    }

    #[test]
    fn stray_words_do_not_capture_the_message() {
        let p = parser();
        check(
            &p,
            &[
                (
                    "need a dev env for cart-service with redis; the deploy can wait",
                    json!({"action": "create_environment", "service": "cart-service",
                           "environment": "dev", "resources": ["redis"]}),
                ),
                (
                    "no restart needed, just deploy billing-api to staging",
                    json!({"action": "deploy", "service": "billing-api", "environment": "staging"}),
                ),
                (
                    "don't roll back, promote user-service to prod instead",
                    json!({"action": "promote", "service": "user-service",
                           "from": "staging", "to": "production"}),
                ),
                (
                    "billing-api staging also needs kafka, please add it",
                    json!({"action": "add_resource", "service": "billing-api",
                           "environment": "staging", "resources": ["kafka"]}),
                ),
                ("thanks, the rollback worked", json!({"action": "none"})),
                (
                    "thank you so much for all the help!",
                    json!({"action": "none"}),
                ),
                (
                    "thank u for ur help with the deploy",
                    json!({"action": "none"}),
                ),
                (
                    "great job on the prod release everyone",
                    json!({"action": "none"}),
                ),
                (
                    "lol that restart saved my afternoon",
                    json!({"action": "none"}),
                ),
            ],
        );
    }

    #[test]
    fn everyday_words_are_environments_only_in_an_environments_place() {
        let p = parser();
        check(
            &p,
            &[
                (
                    "I'd like to test something, restart search-api in dev",
                    json!({"action": "restart", "service": "search-api", "environment": "dev"}),
                ),
                (
                    "at this stage we just need a preview env for user-service",
                    json!({"action": "create_environment", "service": "user-service",
                           "environment": "preview", "resources": []}),
                ),
                (
                    "create a test env for order-worker",
                    json!({"action": "create_environment", "service": "order-worker",
                           "environment": "staging", "resources": []}),
                ),
                (
                    "ship cart-service to live",
                    json!({"action": "deploy", "service": "cart-service", "environment": "production"}),
                ),
            ],
        );
    }

    #[test]
    fn misspelt_verbs_count_but_leave_the_parse_unsure() {
        let p = parser();
        check(
            &p,
            &[
                (
                    "restrat billing-api in prod",
                    json!({"action": "restart", "service": "billing-api", "environment": "production"}),
                ),
                (
                    "delpoy cart-service to dev",
                    json!({"action": "deploy", "service": "cart-service", "environment": "dev"}),
                ),
                (
                    "promtoe user-service to prod",
                    json!({"action": "promote", "service": "user-service",
                           "from": "staging", "to": "production"}),
                ),
                (
                    "create stagign for auth-service",
                    json!({"action": "create_environment", "service": "auth-service",
                           "environment": "staging", "resources": []}),
                ),
            ],
        );
        let typo = p.parse("restrat billing-api in prod");
        assert!(!typo.sure && typo.confidence < Parsed::SURE_AT, "{typo:?}");
        // A real word one letter from a verb is not that verb.
        assert!(!kind(&read(&p, "the cache of cart-service in prod is stale")).is_mutating());
    }

    #[test]
    fn ownership_phrasings() {
        let p = parser();
        for text in [
            "which squad has billing-api?",
            "does anybody own legacy-reports",
            "what team runs billing-api",
        ] {
            assert_eq!(
                read(&p, text),
                json!({"action": "who_owns", "service": if text.contains("legacy") { "legacy-reports" } else { "billing-api" }}),
                "{text}"
            );
        }
    }

    #[test]
    fn two_changes_argued_for_equally_give_clarify_naming_them() {
        let p = parser();
        let got = read(&p, "deploy or roll back checkout-api in prod?");
        assert_eq!(got["action"], "clarify", "{got}");
        assert_eq!(got["candidates"], json!(["deploy", "rollback"]), "{got}");
        // The first request of several is the message's, with less confidence.
        let two = p.parse("deploy payment-service to prod; also restart auth-service in staging");
        assert_eq!(two.action.kind(), ActionKind::Deploy);
    }

    #[test]
    fn talk_about_changes_is_not_a_request_for_one() {
        let p = parser();
        for text in [
            "if I promote user-service to prod, does it need an approval?",
            "what happens when I restart auth-service in prod?",
            "should we roll back billing-api?",
            "is it safe to scale search-api down in prod?",
            "I'll restart order-worker in staging myself",
            "we are rolling back cart-service in prod right now",
            "fyi deploying checkout-api to staging",
            "no need to redeploy billing-api",
            "scratch that, don't deploy",
            "where are the deploy logs for user-service?",
            "rollbacks of checkout-api in prod take forever",
            "can you check whether order-service needs a restart in prod?",
            "which crate does cart-service use in staging",
            "checkout-api deploys to staging are slow today",
            "can you see if billing-api needs a rollback in prod",
            "maybe we should restart search-api in staging?",
            "we might need to scale checkout-api to 6 in prod",
        ] {
            assert!(
                !kind(&read(&p, text)).is_mutating(),
                "{text} => {}",
                read(&p, text)
            );
        }
    }

    #[test]
    fn objects_decide_what_a_verb_acts_on() {
        let p = parser();
        check(
            &p,
            &[
                // Pods are running copies: killing them restarts.
                (
                    "delete the pods of billing-api in qa",
                    json!({"action": "restart", "service": "billing-api", "environment": "staging"}),
                ),
                // A resource's own upgrade or restart is not the service's.
                (
                    "bounce the redis of cart-service in prod",
                    json!({"action": "ask", "question": "bounce the redis of cart-service in prod"}),
                ),
                // "more" pods is relative: how many?
                (
                    "give search-api 2 more pods in prod",
                    json!({"action": "clarify", "missing": ["replicas"]}),
                ),
                (
                    "get me order-worker status on stg",
                    json!({"action": "status", "service": "order-worker", "environment": "staging"}),
                ),
                // The verb's own object, not the topic mentioned before it.
                (
                    "once the rollout of billing-api to qa is done, bounce email-sender on dev",
                    json!({"action": "restart", "service": "email-sender", "environment": "dev"}),
                ),
                (
                    "we rolled auth-service back to 3.1.0 last night; now redeploy 3.2.1 to prod",
                    json!({"action": "deploy", "service": "auth-service", "environment": "production", "version": "3.2.1"}),
                ),
                (
                    "make it 5 replicas for cart-service in prod",
                    json!({"action": "scale", "service": "cart-service", "environment": "production", "replicas": 5}),
                ),
            ],
        );
    }

    #[test]
    fn conflicting_slots_ask_and_corrections_win() {
        let p = parser();
        check(
            &p,
            &[
                (
                    "restart billing-api in dev and staging",
                    json!({"action": "clarify", "missing": ["environment"], "candidates": ["dev", "staging"]}),
                ),
                (
                    "deploy user-service and auth-service to prod",
                    json!({"action": "clarify", "missing": ["service"], "candidates": ["user-service", "auth-service"]}),
                ),
                (
                    "restart billing-api in staging, actually dev",
                    json!({"action": "restart", "service": "billing-api", "environment": "dev"}),
                ),
                (
                    "deploy user-service to prod, no wait, to staging",
                    json!({"action": "deploy", "service": "user-service", "environment": "staging"}),
                ),
            ],
        );
    }

    #[test]
    fn what_is_given_decides_not_where_the_receiver_runs() {
        let p = parser();
        check(
            &p,
            &[
                (
                    "give billing-api in dev a redis",
                    json!({"action": "add_resource", "service": "billing-api", "environment": "dev", "resources": ["redis"]}),
                ),
                (
                    "pls give order-service on staging a postgres db",
                    json!({"action": "add_resource", "service": "order-service", "environment": "staging", "resources": ["postgres"]}),
                ),
                (
                    "give me a staging env for cart-service with redis",
                    json!({"action": "create_environment", "service": "cart-service", "environment": "staging", "resources": ["redis"]}),
                ),
            ],
        );
    }

    #[test]
    fn a_change_the_writer_refuses_is_surely_nothing_and_an_arrow_surely_a_promotion() {
        let p = parser();
        for text in [
            "do NOT roll back billing-api in prod, the fix is already out",
            "don't deploy cart-service 2.0 yet",
            "the deploy of checkout-api 5.1.0 to staging went fine, thanks",
        ] {
            let r = p.parse(text);
            assert_eq!(r.action, Action::Nothing, "{text}");
            // Sure: `auto` asks no model to reread it as the change.
            assert!(r.sure, "{text}: {r:?}");
        }
        let r = p.parse("search-indexer dev => staging");
        assert!(r.sure, "{r:?}");
        assert_eq!(
            serde_json::to_value(r.action).unwrap(),
            json!({"action": "promote", "service": "search-indexer", "from": "dev", "to": "staging"})
        );
    }

    #[test]
    fn a_question_for_what_is_plainly_absent_is_sure() {
        let p = parser();
        for text in [
            "restart order-service",
            "scale inventory-api to 5",
            "roll back payment in prod",
            // No word that could name a service: no model can find one.
            "restart please",
            "deploy it to staging",
            "tear down the preview env",
        ] {
            let r = p.parse(text);
            assert!(matches!(r.action, Action::Clarify { .. }), "{text}");
            assert!(r.sure, "{text}: {r:?}");
        }
        // A name the catalog lacks may be a typo a model can place.
        let r = p.parse("deploy warehouse-api to staging");
        assert!(
            matches!(r.action, Action::Clarify { .. }) && !r.sure,
            "{r:?}"
        );
        // Two environments for one restart: which one is a matter of
        // reading, not of absence.
        let r = p.parse("restart order-service in prod and staging");
        assert!(
            matches!(r.action, Action::Clarify { .. }) && !r.sure,
            "{r:?}"
        );
    }

    #[test]
    fn confidence_follows_the_evidence() {
        let p = parser();
        let clear = p.parse("deploy checkout-api 2.4.1 to production");
        assert!(clear.sure && clear.confidence >= 0.9, "{clear:?}");
        let scale_missing = p.parse("scale order-worker");
        assert_eq!(
            serde_json::to_value(scale_missing.action).unwrap(),
            json!({"action": "clarify", "missing": ["environment", "replicas"]})
        );
        let e = p.explain("the 2.2.0 rollout of user-service on staging is bad, roll it back");
        assert!(e.decided.contains("rollback"), "{e}");
        assert_eq!(e.cues.len(), 2, "{e}");
    }
}
