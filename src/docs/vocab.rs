//! The words a question is read with: what is filler, and which words mean
//! the same thing on this platform.
//!
//! The synonym groups start from Paver's own vocabulary (the resource and
//! environment words of `domain::ResourceKind::from_word` and
//! `domain::Environment::from_word`, the parser's lexicon) and add the
//! abbreviations people type in chat for what platform docs talk about. A
//! group is symmetric: a question saying `k8s` finds a page saying
//! `Kubernetes`, and the other way round.

/// Groups of single words that mean one thing. Only single tokens: the
/// tokenizer splits `on-call` into `on` and `call` on both sides anyway.
pub const SYNONYMS: &[&[&str]] = &[
    // Resources (domain::ResourceKind::from_word).
    &[
        "postgres",
        "postgresql",
        "pg",
        "psql",
        "pgsql",
        "postgre",
        "postgress",
    ],
    &["mysql", "mariadb"],
    &["redis", "valkey"],
    &["rabbitmq", "rabbit", "amqp"],
    &["mongodb", "mongo"],
    &["opensearch", "elasticsearch", "elastic"],
    &["s3", "bucket"],
    &["database", "db", "dbs", "databases"],
    // Environments (domain::Environment::from_word).
    &["production", "prod", "prd"],
    &["staging", "stg", "stage"],
    &["development", "dev"],
    &["preview", "ephemeral"],
    &["environment", "env", "envs", "environments"],
    // What platform docs are about, as typed in chat.
    &["kubernetes", "k8s", "kube", "kubectl"],
    &[
        "credentials",
        "creds",
        "credential",
        "password",
        "passwords",
    ],
    &["configuration", "config", "cfg"],
    &["repository", "repo", "repos"],
    &["application", "app", "apps"],
    &["documentation", "docs"],
    &["authentication", "auth"],
    &["certificate", "cert", "certs", "tls", "ssl"],
    &["vulnerability", "vuln", "vulns", "cve"],
    &["approval", "approve", "approver", "signoff"],
    &["rollback", "revert"],
    &["deploy", "deployment", "release", "ship"],
    &["autoscaling", "autoscale", "hpa", "autoscaler"],
    &["replicas", "replica", "instances", "pods"],
    // Not "paging": its stem is "page", as in "this page explains".
    &["oncall", "pager", "pagerduty"],
    &["incident", "outage", "sev"],
    &["postmortem", "retro", "retrospective", "rca"],
    &["secret", "secrets", "vault"],
    &["pipeline", "ci", "workflow"],
    &["dashboard", "grafana", "dashboards"],
    &["logs", "logging", "log"],
    &["traces", "tracing", "trace"],
    &["metrics", "prometheus"],
    &["microservice", "service", "svc"],
    &["namespace", "ns"],
    &["ttl", "lifetime", "expire", "expiry"],
    &["delete", "destroy", "remove", "teardown"],
    &["cost", "costs", "spend", "budget"],
    &["dns", "hostname", "domain"],
    &["template", "templates", "scaffold", "boilerplate"],
    &["topic", "topics"],
    &["freeze", "blackout"],
    &["msg", "message"],
    &["perms", "permissions", "permission", "access"],
    &["info", "information"],
    // Units and limits as abbreviated in chat ("max replicas", "15 min").
    &["maximum", "max"],
    &["minimum", "min"],
    &["minutes", "minute", "mins", "min"],
    &["hours", "hour", "hrs", "hr"],
    &["seconds", "second", "secs", "sec"],
    // Emptying a cache or a queue.
    &["flush", "clear", "purge", "wipe"],
    // Pages.
    &["acknowledged", "acknowledge", "ack", "acked"],
    // Shares: the docs write `10%`, indexed as `percent` too.
    &["percent", "percentage", "pct"],
    // Buttons, as people say they used them.
    &["click", "press", "tap"],
];

/// Past forms of irregular English verbs and the verb: the stemmer knows
/// "rotated" is "rotate" but not that "torn" is "tear" or "went" is "go".
pub const IRREGULAR: &[(&str, &str)] = &[
    ("began", "begin"),
    ("begun", "begin"),
    ("bent", "bend"),
    ("bound", "bind"),
    ("broke", "break"),
    ("broken", "break"),
    ("brought", "bring"),
    ("built", "build"),
    ("bought", "buy"),
    ("caught", "catch"),
    ("chose", "choose"),
    ("chosen", "choose"),
    ("came", "come"),
    ("dealt", "deal"),
    ("did", "do"),
    ("drew", "draw"),
    ("drawn", "draw"),
    ("drove", "drive"),
    ("driven", "drive"),
    ("fell", "fall"),
    ("fallen", "fall"),
    ("fed", "feed"),
    ("felt", "feel"),
    ("fought", "fight"),
    ("found", "find"),
    ("forgot", "forget"),
    ("forgotten", "forget"),
    ("froze", "freeze"),
    ("frozen", "freeze"),
    ("gave", "give"),
    ("given", "give"),
    ("went", "go"),
    ("gone", "go"),
    ("grew", "grow"),
    ("grown", "grow"),
    ("hid", "hide"),
    ("hidden", "hide"),
    ("held", "hold"),
    ("kept", "keep"),
    ("knew", "know"),
    ("known", "know"),
    ("laid", "lay"),
    ("led", "lead"),
    ("left", "leave"),
    ("lent", "lend"),
    ("lost", "lose"),
    ("made", "make"),
    ("meant", "mean"),
    ("met", "meet"),
    ("paid", "pay"),
    ("ran", "run"),
    ("rang", "ring"),
    ("rose", "rise"),
    ("risen", "rise"),
    ("said", "say"),
    ("saw", "see"),
    ("seen", "see"),
    ("sought", "seek"),
    ("sold", "sell"),
    ("sent", "send"),
    ("shook", "shake"),
    ("shot", "shoot"),
    ("shown", "show"),
    ("slept", "sleep"),
    ("spent", "spend"),
    ("spun", "spin"),
    ("stood", "stand"),
    ("stole", "steal"),
    ("stolen", "steal"),
    ("stuck", "stick"),
    ("struck", "strike"),
    ("swore", "swear"),
    ("sworn", "swear"),
    ("took", "take"),
    ("taken", "take"),
    ("taught", "teach"),
    ("tore", "tear"),
    ("torn", "tear"),
    ("told", "tell"),
    ("thought", "think"),
    ("threw", "throw"),
    ("thrown", "throw"),
    ("understood", "understand"),
    ("woke", "wake"),
    ("woken", "wake"),
    ("wore", "wear"),
    ("worn", "wear"),
    ("won", "win"),
    ("wrote", "write"),
    ("written", "write"),
];

/// How services and teams are named (`billing-api`, `order-service`,
/// `analytics-pipeline`, `team-commerce`): a hyphenated word starting or
/// ending so names one of them — the asker's own, which general docs name
/// only as an example, if at all.
pub const NAME_PREFIXES: &[&str] = &["team", "squad", "group"];
pub const NAME_SUFFIXES: &[&str] = &[
    "service", "svc", "api", "app", "web", "ui", "frontend", "backend", "worker", "workers",
    "pipeline", "job", "jobs", "cron", "bot", "gateway", "gw", "proxy", "consumer", "producer",
    "server", "client", "sdk", "lib", "site", "portal", "db", "store", "engine", "daemon", "agent",
];

/// Whether `parts` (a hyphenated word, split) is named like a service or
/// a team.
pub fn looks_like_a_name(parts: &[String]) -> bool {
    parts.len() >= 2
        && (NAME_PREFIXES.contains(&parts[0].as_str())
            || NAME_SUFFIXES.contains(&parts[parts.len() - 1].as_str()))
}

/// The verb an irregular past form is of.
pub fn lemma(word: &str) -> Option<&'static str> {
    IRREGULAR
        .iter()
        .find(|(past, _)| *past == word)
        .map(|(_, verb)| *verb)
}

/// What a question asks for, said in words the answer does not use: "how
/// long" asks for a duration (the docs say TTL, retention, hours), "when
/// is the team around" for hours, "without picking a size" for a default.
/// Any of an entry's cues adds one word to the question, any of whose
/// forms counts.
pub struct Asks {
    /// The cues: these words in order, at most `gap` others between two
    /// of them.
    pub cues: &'static [(&'static [&'static str], usize)],
    /// The word added, and the words that count as it.
    pub adds: &'static [&'static str],
}

pub const ASKS: &[Asks] = &[
    Asks {
        cues: &[(&["how", "long"], 0)],
        adds: &["duration", "lifetime", "ttl", "retention", "hours", "days"],
    },
    Asks {
        cues: &[
            (&["when", "around"], 4),
            (&["when", "available"], 4),
            (&["when", "online"], 4),
        ],
        adds: &["hours"],
    },
    // "without picking a size", "if we leave the size out", "if I don't
    // pick one", "out of the box"
    Asks {
        cues: &[
            (&["without", "picking"], 1),
            (&["without", "choosing"], 1),
            (&["without", "specifying"], 1),
            (&["without", "setting"], 1),
            (&["out", "of", "the", "box"], 0),
            (&["leave", "out"], 3),
            (&["don", "pick"], 1),
            (&["don", "specify"], 1),
            (&["dont", "pick"], 0),
            (&["dont", "specify"], 0),
        ],
        adds: &["default", "defaults"],
    },
    // One service cannot reach another: a network question, whatever the
    // words ("can't reach", "cannot reach", "unable to reach").
    Asks {
        cues: &[
            (&["t", "reach"], 0),
            (&["cant", "reach"], 0),
            (&["cannot", "reach"], 0),
            (&["unable", "reach"], 1),
        ],
        adds: &["network", "traffic"],
    },
];

/// The words `tokens` (lowercase, in order) ask for through [`ASKS`].
pub fn asks<'a>(tokens: &'a [String]) -> impl Iterator<Item = &'static [&'static str]> + 'a {
    ASKS.iter()
        .filter(|a| a.cues.iter().any(|(cue, gap)| has_cue(tokens, cue, *gap)))
        .map(|a| a.adds)
}

fn has_cue(tokens: &[String], cue: &[&str], gap: usize) -> bool {
    let Some((first, rest)) = cue.split_first() else {
        return false;
    };
    tokens.iter().enumerate().any(|(i, t)| {
        if t != first {
            return false;
        }
        let mut at = i;
        for w in rest {
            let window = tokens.iter().enumerate().skip(at + 1).take(gap + 1);
            match window.into_iter().find(|(_, t)| t == w) {
                Some((j, _)) => at = j,
                None => return false,
            }
        }
        true
    })
}

/// Words that carry no subject in a question: English stopwords and the
/// filler of chat ("hey team, quick q — does anyone know …").
pub const FILLER: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anybody",
    "anyone",
    "anything",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "done",
    "down",
    "during",
    "each",
    "else",
    "every",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "him",
    "his",
    "how",
    "i",
    "if",
    "im",
    "in",
    "into",
    "is",
    "isn",
    "it",
    "its",
    "itself",
    "just",
    "let",
    "ll",
    "me",
    "might",
    "more",
    "most",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "out",
    "over",
    "re",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "ve",
    "very",
    "was",
    "we",
    "were",
    "what",
    "whats",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "d",
    "m",
    "u",
    "ur",
    "pls",
    "please",
    "plz",
    "thanks",
    "thx",
    "ty",
    "hey",
    "hi",
    "hello",
    "folks",
    "guys",
    "team",
    "quick",
    "question",
    "q",
    "qq",
    "wondering",
    "know",
    "knows",
    "tell",
    "anyway",
    "btw",
    "actually",
    "really",
    "basically",
    "maybe",
    "possible",
    "somehow",
    "someone",
    "somebody",
    "something",
    "thing",
    "things",
    "way",
    "ways",
    "need",
    "needs",
    "want",
    "wants",
    "trying",
    "try",
    "get",
    "got",
    "go",
    "going",
    "lol",
    "ok",
    "okay",
    "ah",
    "oh",
    "um",
    "uh",
    "hmm",
    "idk",
    "afaik",
    "iirc",
    "gonna",
    "wanna",
    "kinda",
    "sorta",
    "stuff",
    "help",
    "ya",
    "yeah",
    "yes",
    "able",
    "allowed",
    "supposed",
    "one",
    "ones",
    "still",
    "already",
    "currently",
    "right",
    "exactly",
    "etc",
    "e",
    "g",
    "eg",
    "ie",
    "again",
    "is",
    "we",
    "our",
    "us",
    "whats",
    // Chat: greetings, hedges and contractions typed without the apostrophe.
    "hiya",
    "yo",
    "ppl",
    "peeps",
    "everyone",
    "asap",
    "urgent",
    "urgently",
    "halp",
    "wtf",
    "omg",
    "oops",
    "ugh",
    "argh",
    "lmk",
    "tia",
    "cheers",
    "rn",
    "tbh",
    "imo",
    "fyi",
    "dunno",
    "hows",
    "wheres",
    "whos",
    "cant",
    "dont",
    "doesnt",
    "didnt",
    "isnt",
    "arent",
    "wasnt",
    "wont",
    "shouldnt",
    "couldnt",
    "wouldnt",
    "aint",
    "ive",
    "youre",
    "theyre",
    "thats",
    "theres",
    "like",
    "bit",
    "lot",
    "lots",
    "much",
    "many",
    "even",
    "ever",
    "anymore",
    "seems",
    "seem",
    "seemed",
    "guess",
    "think",
    "thought",
    "sure",
    "wonder",
    "curious",
    "anyways",
    "thank",
    "gotta",
    "tried",
    "figure",
    "figured",
    "happen",
    "happens",
    "happened",
    "happening",
    "works",
    "worked",
    "correct",
    "correctly",
    "properly",
    "best",
    "good",
    "great",
    "fine",
    "bad",
    "new",
    "old",
    "somewhere",
    "someplace",
    "sb",
    "sth",
    "pretty",
    "totally",
    "literally",
    "probably",
    "apparently",
    "suddenly",
    "keeps",
    "keep",
    "kept",
    "though",
    "although",
    "nobody",
    "noone",
];

/// Everyday English by frequency: see the file's header.
const ENGLISH: &str = include_str!("english_words.txt");

/// The rank (1 = most frequent) of `word` among everyday English words, or
/// of the word it is an inflection of ("disappeared" → "disappear"); `None`
/// when it is not among them: a name, a product, jargon or a typo.
pub fn english_rank(word: &str) -> Option<u32> {
    static RANKS: std::sync::LazyLock<std::collections::HashMap<&'static str, u32>> =
        std::sync::LazyLock::new(|| {
            ENGLISH
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .zip(1..)
                .collect()
        });
    // A number, a time or a size ("60s", "3pm", "14") is a value, not a
    // subject: as common as a word can be. A word that starts with a letter
    // ("k6", "ec2", "log4j") is a name.
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        return Some(1);
    }
    let inflected = ["s", "es", "ed", "d", "ing"].iter().filter_map(|suffix| {
        word.strip_suffix(suffix)
            .filter(|w| w.len() >= 3)
            .and_then(|w| RANKS.get(w).copied())
    });
    RANKS.get(word).copied().into_iter().chain(inflected).min()
}

/// The other words of `word`'s synonym group.
pub fn synonyms(word: &str) -> impl Iterator<Item = &'static str> + '_ {
    SYNONYMS
        .iter()
        .filter(move |g| g.contains(&word))
        .flat_map(|g| g.iter().copied())
        .filter(move |w| *w != word)
}

pub fn is_filler(word: &str) -> bool {
    FILLER.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyday_words_rank_high_and_names_not_at_all() {
        let yesterday = english_rank("yesterday").unwrap();
        assert!(yesterday < 2_000, "{yesterday}");
        // An inflection counts as its word.
        assert!(english_rank("disappeared").is_some());
        assert_eq!(english_rank("cassandra").map(|r| r > 5_000), Some(true));
        assert_eq!(english_rank("datadog"), None);
        assert_eq!(english_rank("k6"), None);
        assert_eq!(english_rank("60s"), Some(1));
    }
}
