//! Slack and Discord markup, removed before understanding.
//!
//! What the writer meant stays (bold, italic and code lose only their
//! markers; a link keeps its label); what is not words goes (mentions,
//! `<!channel>`, emoji); what the writer took back (`~struck out~`) and what
//! they quoted from someone else (`> ...`) go with their content.

/// Returns the plain text of a chat message.
pub fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        // A quoted line is somebody else's words, not a request.
        if trimmed.starts_with('>') || trimmed.starts_with("&gt;") {
            continue;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line);
    }
    let out = strip_angle_entities(&out);
    let out = strip_struck(&out);
    let out = decode_entities(&out);
    strip_inline_markers(&out)
}

/// `<@U123>`, `<#C1|name>`, `<!here>`, `<:emoji:1>`, `<t:1:R>` vanish;
/// `<https://x|label>` keeps its label and `<https://x>` its address.
fn strip_angle_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &after[..close];
        if inner.contains('<') || inner.contains('\n') || inner.is_empty() {
            // Not an entity ("a < b", "<3"): keep the bracket as text.
            out.push('<');
            rest = after;
            continue;
        }
        let first = inner.as_bytes()[0];
        let is_link = inner.starts_with("http://")
            || inner.starts_with("https://")
            || inner.starts_with("mailto:");
        if is_link {
            let shown = match inner.split_once('|') {
                Some((_, label)) => label,
                None => inner,
            };
            out.push_str(shown);
        } else if matches!(first, b'@' | b'#' | b'!' | b':')
            || inner.starts_with("a:")
            || inner.starts_with("t:")
        {
            out.push(' ');
        } else {
            out.push('<');
            out.push_str(inner);
            out.push('>');
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn is_boundary(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c.is_whitespace() || (c.is_ascii_punctuation() && c != '~'),
    }
}

/// Removes `~struck~` (Slack) and `~~struck~~` (Discord) with their content.
/// A lone tilde ("~5 replicas") is not strikethrough and is dropped alone.
fn strip_struck(text: &str) -> String {
    if !text.contains('~') {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '~' && is_boundary(if i == 0 { None } else { Some(chars[i - 1]) }) {
            let double = chars.get(i + 1) == Some(&'~');
            let start = if double { i + 2 } else { i + 1 };
            if start < chars.len() && !chars[start].is_whitespace() && chars[start] != '~' {
                // Find the matching closer on the same line.
                let mut j = start;
                let mut found = None;
                while j < chars.len() && chars[j] != '\n' {
                    if chars[j] == '~' {
                        let closes = if double {
                            chars.get(j + 1) == Some(&'~')
                        } else {
                            true
                        };
                        let after = if double { j + 2 } else { j + 1 };
                        if closes
                            && !chars[j - 1].is_whitespace()
                            && is_boundary(chars.get(after).copied())
                        {
                            found = Some(after);
                            break;
                        }
                    }
                    j += 1;
                }
                if let Some(after) = found {
                    out.push(' ');
                    i = after;
                    continue;
                }
            }
            i += 1;
            continue;
        }
        if chars[i] == '~' {
            i += 1;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Slack escapes `&`, `<` and `>` in message text.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Drops emphasis and code markers and `:emoji:` shortcodes; keeps words.
fn strip_inline_markers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' | '`' | '|' => {
                out.push(' ');
                i += 1;
            }
            '_' => {
                // Emphasis markers sit at word edges; snake_case keeps its `_`.
                let prev = if i == 0 { None } else { Some(chars[i - 1]) };
                let next = chars.get(i + 1).copied();
                let inside_word = prev.is_some_and(char::is_alphanumeric)
                    && next.is_some_and(char::is_alphanumeric);
                if inside_word {
                    out.push('_');
                } else {
                    out.push(' ');
                }
                i += 1;
            }
            ':' => {
                // `:thumbsup:`, `:+1:`: a shortcode has no spaces and does
                // not follow a word, so a time (10:30:00) or an image tag
                // (api:2.0) is not one.
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '_' | '+' | '-'))
                {
                    j += 1;
                }
                let prev_ok = i == 0 || !chars[i - 1].is_alphanumeric();
                if prev_ok && j > i + 1 && chars.get(j) == Some(&':') {
                    out.push(' ');
                    i = j + 1;
                } else {
                    out.push(':');
                    i += 1;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip;

    fn squash(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn mentions_and_broadcasts_vanish() {
        assert_eq!(squash(&strip("<@U0BOT> help me")), "help me");
        assert_eq!(squash(&strip("<!channel> <@U1|bob> hi <#C1|ops>")), "hi");
        assert_eq!(squash(&strip("<@!123456> deploy <@&99> now")), "deploy now");
        assert_eq!(squash(&strip("<!subteam^S1|@platform> ping")), "ping");
    }

    #[test]
    fn links_keep_their_label() {
        assert_eq!(
            squash(&strip(
                "see <https://x.example/a|the docs> or <https://y.example>"
            )),
            "see the docs or https://y.example"
        );
    }

    #[test]
    fn emphasis_and_code_keep_their_words() {
        assert_eq!(
            squash(&strip("create staging for `checkout-api` with *redis*")),
            "create staging for checkout-api with redis"
        );
        assert_eq!(
            squash(&strip("_please_ **now** __ok__ ```a b```")),
            "please now ok a b"
        );
        assert_eq!(squash(&strip("my_var stays")), "my_var stays");
    }

    #[test]
    fn struck_words_are_taken_back() {
        assert_eq!(
            squash(&strip("deploy ~order-service~ checkout-api to staging")),
            "deploy checkout-api to staging"
        );
        assert_eq!(
            squash(&strip("scale to ~~5~~ 3 replicas")),
            "scale to 3 replicas"
        );
        assert_eq!(squash(&strip("about ~5 replicas")), "about 5 replicas");
    }

    #[test]
    fn entities_quotes_and_emoji() {
        assert_eq!(squash(&strip("a &amp; b &lt;x&gt;")), "a & b <x>");
        assert_eq!(squash(&strip("&gt; old words\nnew words")), "new words");
        assert_eq!(squash(&strip(":thumbsup: thanks :+1:")), "thanks");
        assert_eq!(
            squash(&strip("at 10:30:00 deploy api:2.0")),
            "at 10:30:00 deploy api:2.0"
        );
        assert_eq!(squash(&strip("<3 a < b")), "<3 a < b");
    }
}
