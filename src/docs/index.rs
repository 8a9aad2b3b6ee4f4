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
use tantivy::query::{BooleanQuery, BoostQuery, DisjunctionMaxQuery, Occur, Query, TermQuery};
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

/// How much a match counts by where it is: a question's words in a
/// section's own heading say most about it; a page title alone says the
/// page is right but not which section.
const BOOST_HEADING: f32 = 2.5;
const BOOST_PARENTS: f32 = 1.0;
const BOOST_TITLE: f32 = 1.2;
const BOOST_BODY: f32 = 1.0;

/// A synonym is a slightly weaker match than the word typed; a typo
/// correction weaker still (it may be another word).
const WEIGHT_SYNONYM: f32 = 0.9;
const WEIGHT_TYPO: f32 = 0.7;

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
}

/// One word of a question and the stems that count as it.
#[derive(Debug, Clone)]
pub struct QueryWord {
    /// (stem, weight): the word's own stem first.
    pub alternatives: Vec<(String, f32)>,
}

/// A section found: its id and BM25 score.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    pub id: usize,
    pub score: f32,
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
        for (id, d) in docs.iter().enumerate() {
            writer.add_document(doc!(
                fields.title => d.title,
                fields.parents => d.parents,
                fields.heading => d.heading,
                fields.body => d.body,
                fields.id => id as u64,
            ))?;
            let all = format!("{}\n{}\n{}\n{}", d.title, d.parents, d.heading, d.body);
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

    /// The question's words that carry its subject, each with the stems that
    /// count as it: its own, its synonyms', and for a word the docs do not
    /// have, the docs' words one edit away (a typo).
    pub fn read_question(&self, question: &str) -> Vec<QueryWord> {
        let mut out: Vec<QueryWord> = Vec::new();
        let mut seen = BTreeSet::new();
        for word in tokens(&self.plain, question) {
            if vocab::is_filler(&word) {
                continue;
            }
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
            for syn in vocab::synonyms(&word) {
                add(self.stem_of(syn), WEIGHT_SYNONYM, &mut alternatives);
            }
            let known = alternatives.iter().any(|(s, _)| self.df.contains_key(s));
            // Only longer words: a short word one edit from another is as
            // likely a different word as a typo ("pod" / "pid").
            if !known && word.chars().count() >= 5 {
                for (w, s) in &self.words {
                    if strsim::osa_distance(&word, w) == 1 {
                        add(s.clone(), WEIGHT_TYPO, &mut alternatives);
                    }
                }
            }
            out.push(QueryWord { alternatives });
        }
        out
    }

    /// The best `k` sections for the question's words.
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
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(k))?;
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(id) = doc.get_first(f.id).and_then(|v| v.as_u64()) {
                out.push(Found {
                    id: id as usize,
                    score,
                });
            }
        }
        Ok(out)
    }

    /// How much of the question section `id` covers, 0–1: the share of the
    /// question's words it holds (in any form), each word weighed by how
    /// rare it is in the docs. A word the docs never use weighs most, so a
    /// question about something the docs do not mention covers little even
    /// when its everyday words match.
    pub fn coverage(&self, words: &[QueryWord], id: usize) -> f32 {
        let Some(terms) = self.terms.get(id) else {
            return 0.0;
        };
        let n = self.terms.len() as f32;
        let (mut have, mut all) = (0.0f32, 0.0f32);
        for w in words {
            let df = w
                .alternatives
                .iter()
                .filter_map(|(s, _)| self.df.get(s))
                .max()
                .copied()
                .unwrap_or(0) as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            all += idf;
            if w.alternatives.iter().any(|(s, _)| terms.contains(s)) {
                have += idf;
            }
        }
        if all == 0.0 {
            0.0
        } else {
            have / all
        }
    }
}
