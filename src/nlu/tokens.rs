//! Lowercased word and punctuation tokens of a cleaned message.

/// One token: a word (lowercased, apostrophe suffixes split off) or a single
/// punctuation character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub punct: bool,
}

impl Token {
    fn word(s: &str) -> Self {
        Token {
            text: s.to_owned(),
            punct: false,
        }
    }
    fn punct(c: char) -> Self {
        Token {
            text: c.to_string(),
            punct: true,
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '\'')
}

/// Splits plain text into tokens. `w/` becomes `with`, `+` and `&` become
/// `and`, contractions split (`what's` → `what`, `'s`; `don't` → `do`, `not`).
pub fn tokenize(text: &str) -> Vec<Token> {
    let lower = text
        .to_lowercase()
        .replace(['\u{2019}', '\u{2018}', '`'], "'");
    let mut out = Vec::with_capacity(24);
    let mut chars = lower.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if is_word_char(c) {
            let mut end = start + c.len_utf8();
            while let Some(&(i, n)) = chars.peek() {
                if is_word_char(n) {
                    end = i + n.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            // `w/` and `w/o` are words, though `/` is not a word character.
            let raw = &lower[start..end];
            if raw == "w" {
                if let Some(&(_, '/')) = chars.peek() {
                    chars.next();
                    if let Some(&(_, 'o')) = chars.peek() {
                        chars.next();
                        out.push(Token::word("without"));
                    } else {
                        out.push(Token::word("with"));
                    }
                    continue;
                }
            }
            push_word(raw, &mut out);
        } else if c.is_whitespace() {
            continue;
        } else if c == '+' || c == '&' {
            out.push(Token::word("and"));
        } else if matches!(c, '→' | '⇒' | '➡' | '⟶' | '➔' | '⟹' | '▶') {
            // Arrows say "to": `stg → prod` reads like `stg -> prod`.
            out.push(Token::punct('>'));
        } else if c.is_ascii_punctuation() {
            out.push(Token::punct(c));
        } else {
            // Emoji and other symbols are not words; keep a marker so that
            // a message of only emoji is still "something".
            out.push(Token::punct('~'));
        }
    }
    out
}

fn push_word(raw: &str, out: &mut Vec<Token>) {
    let trimmed_end = raw.trim_end_matches(['.', '-', '\'', '_']);
    let word = trimmed_end.trim_start_matches(['.', '-', '\'', '_']);
    if word.is_empty() {
        if raw.contains('.') {
            out.push(Token::punct('.'));
        }
        return;
    }
    match word.split_once('\'') {
        Some((base, suffix)) if !base.is_empty() => match (base, suffix) {
            (b, "t") if b.ends_with('n') => {
                let stem = match b {
                    "can" => "can",
                    "won" => "will",
                    _ => &b[..b.len() - 1],
                };
                out.push(Token::word(stem));
                out.push(Token::word("not"));
            }
            (b, s) => {
                out.push(Token::word(b));
                out.push(Token::word(match s {
                    "s" => "'s",
                    "re" => "are",
                    "m" => "am",
                    "ll" => "will",
                    "d" => "would",
                    "ve" => "have",
                    _ => "'s",
                }));
            }
        },
        _ => out.push(Token::word(word)),
    }
    // A sentence-ending full stop is punctuation, not part of the word.
    if trimmed_end.len() < raw.len() && raw[trimmed_end.len()..].contains('.') {
        out.push(Token::punct('.'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        tokenize(s).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn splits_words_and_punctuation() {
        assert_eq!(
            words("Deploy checkout-api@2.4.0 to STAGING."),
            ["deploy", "checkout-api", "@", "2.4.0", "to", "staging", "."]
        );
        assert_eq!(
            words("checkout-api's preview, w/ pg + redis w/o kafka"),
            [
                "checkout-api",
                "'s",
                "preview",
                ",",
                "with",
                "pg",
                "and",
                "redis",
                "without",
                "kafka"
            ]
        );
        assert_eq!(
            words("what’s up? don't"),
            ["what", "'s", "up", "?", "do", "not"]
        );
        assert_eq!(
            words("can't won't we're"),
            ["can", "not", "will", "not", "we", "are"]
        );
        assert_eq!(words("👍"), ["~"]);
        assert_eq!(words("stg → prod"), ["stg", ">", "prod"]);
        assert_eq!(words("stg->prod"), ["stg", ">", "prod"]);
        assert_eq!(words("dev => qa"), ["dev", "=", ">", "qa"]);
        assert_eq!(words("v1.4.0."), ["v1.4.0", "."]);
    }
}
