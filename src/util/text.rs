//! Text from another system made safe to show in chat.

/// The longest remote text shown in a thread, in characters.
pub const MAX_MESSAGE: usize = 300;

/// Remote text made fit for a thread: one line, at most [`MAX_MESSAGE`]
/// characters, chat markup neutralised (see [`clean`]). Every text that
/// comes from another system and ends up in chat goes through here.
pub fn shorten(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut = if one.chars().count() <= MAX_MESSAGE {
        one
    } else {
        let cut: String = one.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    };
    clean(&cut)
}

/// Neutralises chat markup in remote text, for Slack and Discord alike:
/// `<`, `>` and `&` (Slack's links and `<!here>`, Discord's `<@id>`),
/// backticks (code spans that swallow the rest of a message) become
/// look-alike characters; a zero-width space after `@` keeps `@everyone`,
/// `@here` and `@channel` from pinging anyone; control characters go.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push('‹'),
            '>' => out.push('›'),
            '&' => out.push('＆'),
            '`' => out.push('\''),
            '@' => out.push_str("@\u{200B}"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
