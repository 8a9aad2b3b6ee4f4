//! Readings the action contract has no place for, used by the engine to
//! answer people well: greetings and thanks (the contract's `none`), the
//! catalog names closest to an unknown one ("did you mean"), and questions
//! about a whole environment ("what's deployed in staging?").

use strsim::normalized_damerau_levenshtein;

use crate::catalog::Catalog;
use crate::domain::Environment;

use super::markup;

/// Small talk Paver answers with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallTalk {
    Greeting,
    Thanks,
}

const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "heya",
    "hiya",
    "howdy",
    "yo",
    "morning",
    "gm",
    "greetings",
    "hallo",
];
const THANKS: &[&str] = &[
    "thanks",
    "thank",
    "thx",
    "ty",
    "cheers",
    "appreciated",
    "tysm",
    "merci",
    "danke",
];
/// Words that may stand around a greeting or thanks without making it more.
const FILLER: &[&str] = &[
    "paver",
    "bot",
    "team",
    "all",
    "everyone",
    "folks",
    "there",
    "again",
    "good",
    "afternoon",
    "evening",
    "you",
    "very",
    "so",
    "much",
    "many",
    "a",
    "lot",
    "great",
    "awesome",
    "nice",
    "perfect",
    "lovely",
    "brilliant",
    "ok",
    "okay",
    "cool",
    "oh",
    "and",
    "for",
    "that",
    "the",
    "help",
    "mate",
    "buddy",
    "y'all",
    "yall",
];

fn words(text: &str) -> Vec<String> {
    markup::strip(text)
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A short greeting or thanks and nothing else ("hi", "hello paver",
/// "thanks!", "thank you so much"); `None` for anything that asks for more.
pub fn small_talk(text: &str) -> Option<SmallTalk> {
    let words = words(text);
    if words.is_empty() || words.len() > 6 {
        return None;
    }
    let mut found = None;
    for w in &words {
        let w = w.as_str();
        if THANKS.contains(&w) {
            found = Some(SmallTalk::Thanks);
        } else if GREETINGS.contains(&w) {
            found = found.or(Some(SmallTalk::Greeting));
        } else if !FILLER.contains(&w) {
            return None;
        }
    }
    found
}

/// Parts of service names too common to tell services apart.
const GENERIC_PARTS: &[&str] = &["service", "svc", "api", "app", "server", "web", "the"];

/// Catalog components whose names are closest to some word of `text`, best
/// first, at most `max`: for "deploy ordr-api to staging", order-service
/// and order-worker. Empty when nothing is close.
pub fn closest_services(catalog: &Catalog, text: &str, max: usize) -> Vec<String> {
    let words = words(text);
    let mut scored: Vec<(f64, String)> = Vec::new();
    for c in catalog.components() {
        let name = c.name.as_str();
        let parts: Vec<&str> = name
            .split('-')
            .filter(|p| p.len() >= 3 && !GENERIC_PARTS.contains(p))
            .collect();
        let mut best = 0.0f64;
        for w in &words {
            if w.len() < 3 {
                continue;
            }
            best = best.max(normalized_damerau_levenshtein(w, name));
            for wp in w.split('-').filter(|p| p.len() >= 3) {
                if GENERIC_PARTS.contains(&wp) {
                    continue;
                }
                for p in &parts {
                    best = best.max(normalized_damerau_levenshtein(wp, p));
                }
            }
        }
        if best >= 0.6 {
            scored.push((best, name.to_owned()));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(max).map(|(_, n)| n).collect()
}

const OVERVIEW_CUES: &[&str] = &[
    "deployed", "running", "runs", "live", "there", "status", "state", "versions", "version",
    "overview",
];

/// "what's deployed in staging?", "what is running in prod", "status of
/// dev": a question about one whole environment, naming no service.
pub fn environment_overview(catalog: &Catalog, text: &str) -> Option<Environment> {
    let words = words(text);
    if words.iter().any(|w| catalog.component(w).is_some()) {
        return None;
    }
    let asks = text.contains('?')
        || words.first().is_some_and(|w| {
            ["what", "what's", "whats", "which", "show", "list"].contains(&w.as_str())
        });
    if !asks || !words.iter().any(|w| OVERVIEW_CUES.contains(&w.as_str())) {
        return None;
    }
    let mut envs = words.iter().filter_map(|w| Environment::from_word(w));
    let env = envs.next()?;
    // Two environments ("staging vs prod") is not one overview.
    envs.all(|e| e == env).then_some(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn catalog() -> Catalog {
        Catalog::from_yaml_file(Path::new("config/catalog.yaml")).unwrap()
    }

    #[test]
    fn greetings_and_thanks_are_small_talk_and_requests_are_not() {
        for t in [
            "hi",
            "hello paver",
            "Hey there!",
            "good morning",
            "<@U0PAVER> hi",
        ] {
            assert_eq!(small_talk(t), Some(SmallTalk::Greeting), "{t}");
        }
        for t in [
            "thanks!",
            "thank you so much",
            "thx",
            "cheers paver",
            "great, thanks",
        ] {
            assert_eq!(small_talk(t), Some(SmallTalk::Thanks), "{t}");
        }
        for t in [
            "hi, deploy order-service to staging",
            "thanks, now roll it back",
            "lol",
            "👍",
            "",
            "hello how do I rotate credentials",
        ] {
            assert_eq!(small_talk(t), None, "{t}");
        }
    }

    #[test]
    fn unknown_names_get_the_closest_catalog_names() {
        let c = catalog();
        let near = closest_services(&c, "deploy ordr-api 1.0 to staging", 3);
        assert!(near.contains(&"order-service".to_owned()), "{near:?}");
        assert!(near.contains(&"order-worker".to_owned()), "{near:?}");
        assert!(!near.contains(&"checkout-api".to_owned()), "{near:?}");
        assert_eq!(
            closest_services(&c, "create staging for checkot", 3),
            ["checkout-api"]
        );
        assert!(closest_services(&c, "deploy zzzz to staging", 3).is_empty());
    }

    #[test]
    fn a_whole_environment_is_asked_about_without_a_service() {
        let c = catalog();
        assert_eq!(
            environment_overview(&c, "what's deployed in staging?"),
            Some(Environment::Staging)
        );
        assert_eq!(
            environment_overview(&c, "what is running in prod"),
            Some(Environment::Production)
        );
        assert_eq!(
            environment_overview(&c, "what's deployed in staging for cart-service?"),
            None
        );
        assert_eq!(environment_overview(&c, "deploy to staging"), None);
        assert_eq!(
            environment_overview(&c, "what's running in staging vs prod?"),
            None
        );
    }
}
