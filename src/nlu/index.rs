//! What the parser needs from the catalog, prepared once per catalog:
//! service names and their variants, team names, template keywords.

use std::collections::HashMap;

use super::lexicon::{canonical_stack_word, is_common};
use crate::catalog::Catalog;
use crate::domain::{ServiceName, TeamName, TemplateName};

/// How a service name was found in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceMatch {
    /// The name (or a spacing/plural variant of it) as written.
    Exact(ServiceName),
    /// A unique prefix or part ("checkout" → checkout-api), or a clear typo.
    Fuzzy(ServiceName),
    /// Several services fit.
    Ambiguous(Vec<ServiceName>),
    /// Looks like a service name but none fits; the nearest names, if any.
    Unknown(Vec<ServiceName>),
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    name: ServiceName,
    /// Singularized hyphen-joined key: `orders-services` and
    /// `order-service` share `order-service`.
    key: String,
    parts: Vec<String>,
}

#[derive(Debug, Clone)]
struct TemplateEntry {
    name: TemplateName,
    /// Canonical keyword → weight (name parts weigh most).
    keywords: Vec<(String, u32)>,
}

#[derive(Debug, Clone, Default)]
pub struct CatalogIndex {
    services: Vec<ServiceEntry>,
    by_key: HashMap<String, usize>,
    teams: HashMap<String, TeamName>,
    team_short: HashMap<String, TeamName>,
    templates: Vec<TemplateEntry>,
    template_names: std::collections::HashSet<String>,
}

/// Drops a plural `s` so "orders" meets "order". Applied to both sides, so
/// it only has to be consistent, not correct English.
fn singular(part: &str) -> &str {
    if part.len() > 3 && part.ends_with('s') && !part.ends_with("ss") {
        &part[..part.len() - 1]
    } else {
        part
    }
}

pub fn key_of<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut key = String::new();
    for p in parts {
        for sub in p.split('-').filter(|s| !s.is_empty()) {
            if !key.is_empty() {
                key.push('-');
            }
            key.push_str(singular(sub));
        }
    }
    key
}

const GENERIC_PARTS: [&str; 8] = [
    "service",
    "template",
    "app",
    "the",
    "a",
    "new",
    "microservice",
    "skeleton",
];

impl CatalogIndex {
    pub fn new(catalog: &Catalog) -> Self {
        let mut idx = CatalogIndex::default();
        for c in catalog.components() {
            let name = c.name.clone();
            let parts: Vec<String> = name.as_str().split('-').map(str::to_owned).collect();
            let key = key_of([name.as_str()]);
            let i = idx.services.len();
            idx.by_key.entry(key.clone()).or_insert(i);
            // "orderservice" and "order_service" are the same name too.
            idx.by_key.entry(key.replace('-', "")).or_insert(i);
            idx.services.push(ServiceEntry { name, key, parts });
        }
        for g in catalog.groups() {
            let name = g.name.clone();
            idx.teams.insert(name.as_str().to_owned(), name.clone());
            let short = name
                .as_str()
                .strip_prefix("team-")
                .or_else(|| name.as_str().strip_suffix("-team"))
                .unwrap_or(name.as_str());
            idx.team_short.insert(short.to_owned(), name.clone());
            if let Some(t) = &g.title {
                idx.team_short.insert(t.to_lowercase(), name.clone());
            }
        }
        for t in catalog.templates() {
            let mut keywords: Vec<(String, u32)> = Vec::new();
            let mut add = |w: &str, weight: u32| {
                let w = canonical_stack_word(w).to_owned();
                if GENERIC_PARTS.contains(&w.as_str()) || w.is_empty() {
                    return;
                }
                match keywords.iter_mut().find(|(k, _)| *k == w) {
                    Some((_, old)) => *old = (*old).max(weight),
                    None => keywords.push((w, weight)),
                }
            };
            for p in t.name.as_str().split('-') {
                add(p, 3);
            }
            for tag in &t.tags {
                add(&tag.to_lowercase(), 2);
            }
            if let Some(title) = &t.title {
                for w in title
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric() && c != '.')
                {
                    add(w, 1);
                }
            }
            idx.template_names.insert(t.name.as_str().to_owned());
            idx.templates.push(TemplateEntry {
                name: t.name.clone(),
                keywords,
            });
        }
        idx
    }

    pub fn is_template(&self, name: &str) -> bool {
        self.template_names.contains(name)
    }

    pub fn template_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .templates
            .iter()
            .map(|t| t.name.as_str().to_owned())
            .collect();
        v.sort();
        v
    }

    /// An exact match for a run of words (joined with hyphens).
    pub fn exact(&self, words: &[&str]) -> Option<&ServiceName> {
        let key = key_of(words.iter().copied());
        self.by_key.get(&key).map(|&i| &self.services[i].name)
    }

    /// Services a single word could stand for: as a leading prefix
    /// ("payment" → payment-service, payment-gateway), else as a whole
    /// later part ("gateway" → payment-gateway).
    pub fn partial(&self, word: &str) -> Vec<ServiceName> {
        if word.len() < 3 || is_common(word) {
            return Vec::new();
        }
        let key = key_of([word]);
        let prefixed: Vec<ServiceName> = self
            .services
            .iter()
            .filter(|s| {
                s.key.starts_with(&key)
                    && (s.key.len() == key.len() || s.key.as_bytes()[key.len()] == b'-')
            })
            .map(|s| s.name.clone())
            .collect();
        if !prefixed.is_empty() {
            return prefixed;
        }
        self.services
            .iter()
            .filter(|s| s.parts.iter().skip(1).any(|p| singular(p) == key))
            .map(|s| s.name.clone())
            .collect()
    }

    /// A typo of a service name (or of its first part, for one word).
    /// Returns the nearest names when none is clearly meant.
    pub fn typo(&self, text: &str) -> Result<ServiceName, Vec<ServiceName>> {
        let allowed = match text.len() {
            0..=4 => 0,
            5..=7 => 1,
            _ => 2,
        };
        let whole_word = !text.contains('-');
        // Nothing further than this is a candidate: a name whose length
        // differs by more is that far at least, and is not measured (the
        // parser asks this of many words; the distance is its hot spot).
        let reach = allowed.max(3);
        let far = |other: &str| text.len().abs_diff(other.len()) > reach;
        let mut best: Vec<(usize, &ServiceName)> = Vec::new();
        for s in &self.services {
            let mut d = if far(s.name.as_str()) {
                usize::MAX
            } else {
                strsim::osa_distance(text, s.name.as_str())
            };
            if whole_word && !far(&s.parts[0]) {
                d = d.min(strsim::osa_distance(text, &s.parts[0]));
            }
            if d <= reach {
                best.push((d, &s.name));
            }
        }
        best.sort_by(|(d, n), (e, m)| d.cmp(e).then_with(|| n.as_str().cmp(m.as_str())));
        match best.as_slice() {
            [(d, n), rest @ ..] if *d <= allowed && rest.first().is_none_or(|(d2, _)| d2 > d) => {
                Ok((*n).clone())
            }
            _ => Err(best
                .iter()
                .take_while(|(d, _)| *d <= allowed.max(3))
                .take(3)
                .map(|(_, n)| (*n).clone())
                .collect()),
        }
    }

    /// A team named by a word, possibly with "team" beside it.
    pub fn team(&self, word: &str, team_word_adjacent: bool) -> Option<&TeamName> {
        if let Some(t) = self.teams.get(word) {
            return Some(t);
        }
        if team_word_adjacent {
            return self
                .team_short
                .get(word)
                .or_else(|| self.team_short.get(singular(word)));
        }
        None
    }

    /// The template the words point to, or the candidates if they do not.
    pub fn template(&self, words: &[&str]) -> Result<TemplateName, Vec<String>> {
        let canon: Vec<&str> = words.iter().map(|w| canonical_stack_word(w)).collect();
        let mut scored: Vec<(u32, &TemplateName)> = self
            .templates
            .iter()
            .map(|t| {
                let score = t
                    .keywords
                    .iter()
                    .filter(|(k, _)| canon.contains(&k.as_str()))
                    .map(|(_, w)| w)
                    .sum();
                (score, &t.name)
            })
            .filter(|(s, _)| *s > 0)
            .collect();
        scored.sort_by_key(|s| std::cmp::Reverse(s.0));
        match scored.as_slice() {
            [(s, n), rest @ ..] if rest.first().is_none_or(|(s2, _)| s2 < s) => Ok((*n).clone()),
            [] => Err(self.template_names()),
            tied => {
                let top = tied[0].0;
                Err(tied
                    .iter()
                    .filter(|(s, _)| *s == top)
                    .map(|(_, n)| n.as_str().to_owned())
                    .collect())
            }
        }
    }

    pub fn service_exists(&self, name: &str) -> bool {
        self.by_key.contains_key(&key_of([name]))
    }
}
