//! What a question is about, as words: the key by which the docs' gaps
//! (`paver docs gaps`) and the platform report's unanswered topics group
//! questions, so both count the same topic the same way.

/// Words that say nothing of what is asked, left out when questions are
/// grouped.
const FILLER: &[&str] = &[
    "a", "an", "the", "i", "we", "you", "my", "our", "me", "us", "is", "are", "was", "be", "do",
    "does", "did", "can", "could", "should", "would", "will", "how", "what", "where", "when",
    "why", "which", "who", "to", "of", "for", "in", "on", "at", "with", "and", "or", "it", "this",
    "that", "there", "please", "hi", "hello", "hey", "thanks", "paver", "any", "anyone", "get",
    "have", "has", "need", "want", "way", "is", "am", "some", "about", "from", "if", "there's",
    "what's", "how's", "i'm", "know", "does", "tell", "someone",
];

/// A question's grouping key: its words lowercased, filler dropped, a
/// plural `s` cut, sorted and deduplicated. Grouped by wording rather
/// than by nearest section because a gap is by definition what the docs
/// miss: the nearest section of two unrelated unanswered questions is
/// often the same weak match, and would lump them together.
pub fn gap_key(question: &str) -> String {
    let mut words: Vec<String> = question
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '-'))
        .filter(|w| !w.is_empty() && !FILLER.contains(w))
        .map(|w| {
            if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
                w[..w.len() - 1].to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    words.sort();
    words.dedup();
    words.join(" ")
}
