//! The full-text index: tantivy in RAM, BM25 over English-stemmed fields
//! (page title, parent headings, the section's own heading, body), and the
//! query a question becomes.
//!
//! Beside tantivy's index it keeps what the query builder and the "don't
//! know" decision need and tantivy does not hand out cheaply: the document
//! frequency of every stem, the raw words of the docs (to correct typos
//! against), and the stems of each section (to tell how much of a question a
//! section covers).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, BoostQuery, DisjunctionMaxQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use tantivy::{doc, Index as TantivyIndex, IndexReader, TantivyDocument, Term};

use super::vocab;
use super::DocsError;

const TOKENIZER: &str = "paver_en";

/// How much a match counts by where it is (BM25F-style field weights):
/// headings and the page title name what a section is about in few words,
/// so a match there says more than one in the body. Set on the chat-phrased
/// tuning questions (`tests/data/docs_chat_tune.jsonl`); a heading weighed
/// higher let short heading-only sections win over the ones that answer.
const BOOST_HEADING: f32 = 1.5;
const BOOST_PARENTS: f32 = 1.5;
const BOOST_TITLE: f32 = 2.0;
const BOOST_BODY: f32 = 1.0;

/// A synonym is a slightly weaker match than the word typed; a typo
/// correction weaker still (it may be another word).
const WEIGHT_SYNONYM: f32 = 0.9;
const WEIGHT_TYPO: f32 = 0.7;

/// Two question words side by side in a section (within a couple of words:
/// "point in time", "rotate the credentials") say more about it than the
/// same words apart, so each such pair adds a phrase match on top.
const BOOST_PHRASE: f32 = 0.5;
const PHRASE_SLOP: u32 = 2;

/// How many sections BM25 hands to the re-ranking by coverage: enough
/// that the section holding every word of the question is among them
/// when a long one on a frequent word outscores it.
const RERANK_DEPTH: usize = 30;

/// Word weights from everyday English (see `Index::weight`): a word among
/// the most frequent `ENGLISH_BASE_RANK` weighs `MIN_WEIGHT`, one
/// ranked `e` times lower one more, and so on (the log of the rank); a word
/// not among the 20,000 listed weighs `WEIGHT_NOT_ENGLISH`, a little more
/// than the last of them and about the weight of a word in one section of
/// the docs.
const ENGLISH_BASE_RANK: f32 = 400.0;
const WEIGHT_NOT_ENGLISH: f32 = 5.0;
const MIN_WEIGHT: f32 = 0.3;

/// How much of a section's score survives when it holds none of the
/// question's rarity-weighed words; it scales linearly up to all of it.
const COORD_FLOOR: f32 = 0.5;

/// What is indexed of one section.
pub struct Doc<'a> {
    pub title: &'a str,
    pub parents: &'a str,
    pub heading: &'a str,
    pub body: &'a str,
}

struct Fields {
    title: Field,
    parents: Field,
    heading: Field,
    body: Field,
    id: Field,
}

pub struct Index {
    reader: IndexReader,
    fields: Fields,
    stem: TextAnalyzer,
    plain: TextAnalyzer,
    /// Stem → how many sections hold it (any field).
    df: HashMap<String, u32>,
    /// Every lowercase word of the docs → its stem: what typos are fixed to.
    words: BTreeMap<String, String>,
    /// Each section's stems (any field), by section id.
    terms: Vec<HashSet<String>>,
    /// Hyphenated words of headings, joined (`reactfrontend`, `cipassing`):
    /// what the docs document, never a name of the asker's.
    headed: HashSet<String>,
}

/// `on-call`, `DATABASE_URL`, `rotate-credentials` written as one word
/// (`oncall`, `databaseurl`) and `maxReplicas`, `retentionDays` written as
/// two (`max replicas`): how people type them as often as not. The
/// tokenizer splits the first kind and keeps the second whole; these are
/// indexed besides.
fn compounds(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // "10% of traces": the tokenizer drops the sign, a question says
    // "percentage".
    if text
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_digit() && w[1] == b'%')
    {
        out.push("percent".to_owned());
    }
    for w in text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')) {
        let parts: Vec<&str> = w.split(['-', '_']).filter(|p| !p.is_empty()).collect();
        if parts.len() > 1 {
            out.push(parts.concat().to_lowercase());
        }
        for p in parts {
            let humps = camel_humps(p);
            if humps.len() > 1 {
                out.push(humps.join(" ").to_lowercase());
            }
        }
    }
    out
}

/// `maxReplicas` → `max`, `Replicas`; `HTTP` and `order` stay whole.
fn camel_humps(word: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    for pair in chars.windows(2) {
        let ((_, a), (i, b)) = (pair[0], pair[1]);
        if a.is_lowercase() && b.is_uppercase() {
            out.push(&word[start..i]);
            start = i;
        }
    }
    out.push(&word[start..]);
    out
}

/// One word of a question and the stems that count as it.
#[derive(Debug, Clone)]
pub struct QueryWord {
    /// The word as typed (lowercased).
    pub word: String,
    /// (stem, weight): the word's own stem first.
    pub alternatives: Vec<(String, f32)>,
    /// A name (`billing-api`, `team-growth`, read whole): the asker's own
    /// service or team, which general docs name as an example if at all,
    /// so a section is not found wanting for lacking it.
    pub name: bool,
}

/// A section found: its id, score and how much of the question it holds.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: usize,
    /// BM25 (with phrase matches) scaled by coverage.
    pub score: f32,
    pub coverage: Coverage,
}

/// How much of a question one section holds.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// The share of the question's words it holds (in any form), each word
    /// weighed by how much it says (`Index::weight`), 0–1.
    pub share: f32,
    /// The question's words it does not hold, as typed.
    pub missing: Vec<String>,
}

fn analyzers() -> (TextAnalyzer, TextAnalyzer) {
    let stem = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build();
    let plain = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .build();
    (stem, plain)
}

fn tokens(analyzer: &TextAnalyzer, text: &str) -> Vec<String> {
    let mut a = analyzer.clone();
    let mut stream = a.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

impl Index {
    /// Indexes `docs` in RAM; a section's id is its position in `docs`.
    pub fn build(docs: &[Doc<'_>]) -> Result<Index, DocsError> {
        let mut builder = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Fields {
            title: builder.add_text_field("title", text.clone()),
            parents: builder.add_text_field("parents", text.clone()),
            heading: builder.add_text_field("heading", text.clone()),
            body: builder.add_text_field("body", text),
            id: builder.add_u64_field("id", STORED),
        };
        let index = TantivyIndex::create_in_ram(builder.build());
        let (stem, plain) = analyzers();
        index.tokenizers().register(TOKENIZER, stem.clone());
        // One thread: the docs are small, and Paver shares its cores.
        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 15_000_000)?;
        let mut df: HashMap<String, u32> = HashMap::new();
        let mut words = BTreeMap::new();
        let mut terms = Vec::with_capacity(docs.len());
        let mut headed = HashSet::new();
        for (id, d) in docs.iter().enumerate() {
            headed.extend(
                compounds(&format!("{}\n{}\n{}", d.title, d.parents, d.heading))
                    .into_iter()
                    .filter(|c| !c.contains(' ')),
            );
            let all = format!("{}\n{}\n{}\n{}", d.title, d.parents, d.heading, d.body);
            let joined = compounds(&all).join(" ");
            let body = format!("{}\n{joined}", d.body);
            // A page's top section is headed by the page's title, already a
            // field of its own: counted twice, the page's intro would
            // outrank the section that answers.
            let heading = if d.title.lines().any(|t| t == d.heading) {
                ""
            } else {
                d.heading
            };
            writer.add_document(doc!(
                fields.title => d.title,
                fields.parents => d.parents,
                fields.heading => heading,
                fields.body => body,
                fields.id => id as u64,
            ))?;
            let all = format!("{all}\n{joined}");
            let set: HashSet<String> = tokens(&stem, &all).into_iter().collect();
            for s in &set {
                *df.entry(s.clone()).or_default() += 1;
            }
            for w in tokens(&plain, &all) {
                if let std::collections::btree_map::Entry::Vacant(e) = words.entry(w) {
                    let s = tokens(&stem, e.key())
                        .pop()
                        .unwrap_or_else(|| e.key().clone());
                    e.insert(s);
                }
            }
            terms.push(set);
        }
        writer.commit()?;
        let reader = index.reader()?;
        Ok(Index {
            reader,
            fields,
            stem,
            plain,
            df,
            words,
            terms,
            headed,
        })
    }

    pub fn len(&self) -> usize {
        self.terms.len()
    }

    fn stem_of(&self, word: &str) -> String {
        tokens(&self.stem, word)
            .pop()
            .unwrap_or_else(|| word.to_owned())
    }

    /// The docs' words a typo of `word` may stand for: those at the fewest
    /// edits (one for a word of 5 letters or more, two from 8: a long word
    /// two edits from a docs word is still far from any other), the most
    /// used first.
    fn corrections(&self, word: &str) -> Vec<String> {
        let len = word.chars().count();
        let max = match len {
            0..=4 => return Vec::new(),
            5..=7 => 1,
            _ => 2,
        };
        let mut best: Vec<(usize, u32, &String)> = Vec::new();
        for (w, s) in &self.words {
            // Cheap bound first: the length differs by at most the distance.
            if w.chars().count().abs_diff(len) > max {
                continue;
            }
            let d = strsim::osa_distance(word, w);
            if d == 0 || d > max {
                continue;
            }
            best.push((d, self.df.get(s).copied().unwrap_or(0), s));
        }
        let Some(min) = best.iter().map(|(d, _, _)| *d).min() else {
            return Vec::new();
        };
        best.retain(|(d, _, _)| *d == min);
        best.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.2.cmp(b.2)));
        let mut out: Vec<String> = Vec::new();
        for (_, _, s) in best {
            if !out.contains(s) {
                out.push(s.clone());
            }
            if out.len() == 3 {
                break;
            }
        }
        out
    }

    /// `first` and `next` as one word, when the docs or the synonyms spell
    /// them so: "roll back" → "rollback", "on call" → "oncall", "tear down"
    /// → "teardown".
    fn join(&self, first: &str, next: Option<&String>) -> Option<String> {
        let next = next?;
        let joined = format!("{first}{next}");
        (first.len() >= 2
            && next.len() >= 2
            && (self.words.contains_key(&joined) || vocab::synonyms(&joined).next().is_some()))
        .then_some(joined)
    }

    /// The question's words that carry its subject, each with the stems that
    /// count as it: its own, its synonyms', and for a word the docs do not
    /// have, the docs' words a typo away.
    pub fn read_question(&self, question: &str) -> Vec<QueryWord> {
        let mut out: Vec<QueryWord> = Vec::new();
        let mut seen = BTreeSet::new();
        let tokens = tokens(&self.plain, question);
        let names = self.names(question);
        // Each name's parts are read as the name, once each.
        let mut parts: HashMap<&str, usize> = HashMap::new();
        for n in &names {
            for p in n {
                *parts.entry(p.as_str()).or_default() += 1;
            }
        }
        let mut skip = false;
        for (i, word) in tokens.iter().enumerate() {
            if std::mem::take(&mut skip) {
                continue;
            }
            if let Some(n) = parts.get_mut(word.as_str()).filter(|n| **n > 0) {
                *n -= 1;
                continue;
            }
            let joined = self.join(word, tokens.get(i + 1));
            // A lone letter is a chat abbreviation ("u", "r", "y") or the
            // tail of "w/o", never a subject.
            let lemma = vocab::lemma(word);
            let filler = word.chars().count() < 2
                || vocab::is_filler(word)
                || lemma.is_some_and(vocab::is_filler);
            let (word, joined) = match (filler, joined) {
                // "on call": the pair is the word.
                (true, Some(j)) => {
                    skip = true;
                    (j, None)
                }
                (true, None) => continue,
                // "tear down": the joined form counts as the first word
                // ("max replicas" is two words and "maxreplicas" too).
                (false, Some(j)) => {
                    skip = tokens.get(i + 1).is_some_and(|n| vocab::is_filler(n));
                    (word.clone(), Some(j))
                }
                (false, None) => (word.clone(), None),
            };
            let own = self.stem_of(&word);
            if !seen.insert(own.clone()) {
                continue;
            }
            let mut alternatives = vec![(own.clone(), 1.0)];
            let add = |stem: String, weight: f32, alts: &mut Vec<(String, f32)>| {
                if !alts.iter().any(|(s, _)| *s == stem) {
                    alts.push((stem, weight));
                }
            };
            if let Some(l) = lemma {
                add(self.stem_of(l), 1.0, &mut alternatives);
            }
            for syn in vocab::synonyms(&word) {
                add(self.stem_of(syn), WEIGHT_SYNONYM, &mut alternatives);
            }
            if let Some(j) = &joined {
                add(self.stem_of(j), 1.0, &mut alternatives);
                for syn in vocab::synonyms(j) {
                    add(self.stem_of(syn), WEIGHT_SYNONYM, &mut alternatives);
                }
            }
            let known = alternatives.iter().any(|(s, _)| self.df.contains_key(s));
            if !known {
                // "ho do i": a two-letter word the docs lack, one letter
                // from filler, is that filler mistyped.
                if word.chars().count() == 2
                    && vocab::FILLER
                        .iter()
                        .any(|f| f.len() >= 3 && strsim::levenshtein(&word, f) == 1)
                {
                    continue;
                }
                for s in self.corrections(&word) {
                    add(s, WEIGHT_TYPO, &mut alternatives);
                }
            }
            out.push(QueryWord {
                word,
                alternatives,
                name: false,
            });
        }
        for n in names {
            let joined = n.concat();
            if seen.insert(joined.clone()) {
                out.push(QueryWord {
                    word: n.join("-"),
                    alternatives: vec![(self.stem_of(&joined), 1.0)],
                    name: true,
                });
            }
        }
        // What the question asks for in words the answer does not use.
        for adds in vocab::asks(&tokens) {
            let own = self.stem_of(adds[0]);
            if !seen.insert(own.clone()) {
                continue;
            }
            let mut alternatives = vec![(own, 1.0)];
            for w in &adds[1..] {
                let s = self.stem_of(w);
                if !alternatives.iter().any(|(a, _)| *a == s) {
                    alternatives.push((s, WEIGHT_SYNONYM));
                }
            }
            out.push(QueryWord {
                word: adds[0].to_owned(),
                alternatives,
                name: false,
            });
        }
        out
    }

    /// The parts of the question's names: hyphenated words named like a
    /// service or a team (`billing-api`, `team-commerce`: the asker's own,
    /// which the docs name as an example if at all), and hyphenated words
    /// with a part the docs never use. A hyphenated word of the docs' own
    /// subject (`rotate-credentials`, `ci-passing`) stays.
    fn names(&self, question: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for chunk in question.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
            let parts: Vec<String> = chunk
                .split('-')
                .filter(|p| !p.is_empty())
                .map(str::to_lowercase)
                .collect();
            if parts.len() < 2 || self.headed.contains(&parts.concat()) {
                continue;
            }
            let unknown = |p: &String| {
                !self.df.contains_key(&self.stem_of(p))
                    && vocab::synonyms(p).all(|s| !self.df.contains_key(&self.stem_of(s)))
            };
            let name = vocab::looks_like_a_name(&parts)
                || (!self.words.contains_key(&parts.concat()) && parts.iter().any(unknown));
            if name {
                out.push(parts);
            }
        }
        out
    }

    /// The best `k` sections for the question's words: BM25 over the fields
    /// plus phrase matches, then the top few re-ranked by how much of the
    /// question each holds.
    pub fn search(&self, words: &[QueryWord], k: usize) -> Result<Vec<Found>, DocsError> {
        if words.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let f = &self.fields;
        let fields = [
            (f.heading, BOOST_HEADING),
            (f.parents, BOOST_PARENTS),
            (f.title, BOOST_TITLE),
            (f.body, BOOST_BODY),
        ];
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        // A name of the asker's says nothing about which section answers.
        let subject: Vec<&QueryWord> = words.iter().filter(|w| !w.name).collect();
        if subject.is_empty() {
            return Ok(Vec::new());
        }
        // A name of the asker's counts whole (`cartservice`, indexed from
        // `cart-service`): the section whose example shows it, never one
        // sharing a part of it (`data-pipeline` for `analytics-pipeline`).
        for w in words {
            for (field, boost) in fields {
                // A word and its synonyms count once per field: the best of
                // them, so a page saying both "pg" and "postgres" is not
                // counted twice.
                let alts: Vec<Box<dyn Query>> = w
                    .alternatives
                    .iter()
                    .map(|(stem, weight)| {
                        let q = TermQuery::new(
                            Term::from_field_text(field, stem),
                            IndexRecordOption::WithFreqs,
                        );
                        Box::new(BoostQuery::new(Box::new(q), *weight)) as Box<dyn Query>
                    })
                    .collect();
                let q = DisjunctionMaxQuery::new(alts);
                clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
            }
        }
        for pair in subject.windows(2) {
            let (a, b) = (&pair[0].alternatives[0].0, &pair[1].alternatives[0].0);
            if !self.df.contains_key(a) || !self.df.contains_key(b) {
                continue;
            }
            for (field, boost) in [(f.heading, BOOST_HEADING), (f.body, BOOST_BODY)] {
                let mut q = PhraseQuery::new(vec![
                    Term::from_field_text(field, a),
                    Term::from_field_text(field, b),
                ]);
                q.set_slop(PHRASE_SLOP);
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(q), boost * BOOST_PHRASE)),
                ));
            }
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(k.max(RERANK_DEPTH)))?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(id) = doc.get_first(f.id).and_then(|v| v.as_u64()) {
                let id = id as usize;
                let coverage = self.coverage(words, id);
                // Lucene's old coordination factor, softened: a section
                // holding every word of the question beats one that scores
                // as high on fewer of them.
                let score = score * (COORD_FLOOR + (1.0 - COORD_FLOOR) * coverage.share);
                out.push(Found {
                    id,
                    score,
                    coverage,
                });
            }
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        out.truncate(k);
        Ok(out)
    }

    /// A word's weight: how much it says about what the question is after.
    /// A word says much when it is rare in the docs (BM25's idf) and rare in
    /// everyday English: "pgbouncer" does, "make" or "long" do not, however
    /// seldom the docs use them. A word the docs never use weighs by its
    /// English rarity alone: "yesterday" is chat, "cassandra" a subject the
    /// docs do not cover.
    fn weight(&self, w: &QueryWord) -> f32 {
        if w.name {
            return 0.0;
        }
        let df = w
            .alternatives
            .iter()
            .filter_map(|(s, _)| self.df.get(s))
            .max()
            .copied();
        let value = w.word.starts_with(|c: char| c.is_ascii_digit());
        let english = match vocab::english_rank(&w.word) {
            // "9090", "5xx" in the docs are names there, not values.
            _ if value && df.is_some() => f32::INFINITY,
            Some(rank) => (rank as f32 / ENGLISH_BASE_RANK).ln().max(MIN_WEIGHT),
            None => WEIGHT_NOT_ENGLISH,
        };
        match df {
            Some(df) => {
                let n = self.terms.len() as f32;
                let df = df as f32;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                idf.min(english)
            }
            None => english,
        }
    }

    /// How much of the question section `id` covers.
    pub fn coverage(&self, words: &[QueryWord], id: usize) -> Coverage {
        let Some(terms) = self.terms.get(id) else {
            return Coverage::default();
        };
        let (mut have, mut all) = (0.0f32, 0.0f32);
        let mut missing = Vec::new();
        for w in words.iter().filter(|w| !w.name) {
            let weight = self.weight(w);
            all += weight;
            if w.alternatives.iter().any(|(s, _)| terms.contains(s)) {
                have += weight;
            } else {
                missing.push(w.word.clone());
            }
        }
        Coverage {
            share: if all == 0.0 { 0.0 } else { have / all },
            missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compounds_are_indexed_joined_and_camel_case_split() {
        assert_eq!(
            compounds("run `plat db rotate-credentials`; set maxReplicas and DATABASE_URL"),
            ["rotatecredentials", "max replicas", "databaseurl"]
        );
        assert_eq!(camel_humps("HTTP"), ["HTTP"]);
    }
}
