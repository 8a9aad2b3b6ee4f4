//! Markdown split by heading into sections, each with its heading path, the
//! anchor MkDocs gives the heading, and its text without markup noise.
//!
//! A small line-based reader rather than a CommonMark parser: MkDocs pages
//! are plain headings, paragraphs, lists, tables, fences and admonitions,
//! and what matters here is which words sit under which heading.

use std::collections::BTreeSet;

/// One heading and the text under it up to the next heading (of any level).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    /// The heading's text (the page title for text before any heading).
    pub heading: String,
    /// The headings above it and itself, outermost first.
    pub heading_path: Vec<String>,
    /// The heading's id on the built page (empty: the top of the page).
    pub anchor: String,
    /// 1–6, or 0 for text before any heading.
    pub level: u8,
    /// Prose, list items, table cells and code, markup dropped.
    pub text: String,
}

/// `markdown` split into sections. `title` names text before the first heading.
pub fn split(title: &str, markdown: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut stack: Vec<(u8, String)> = Vec::new();
    let mut used = BTreeSet::new();
    let mut current = Section {
        heading: title.to_owned(),
        heading_path: Vec::new(),
        anchor: String::new(),
        level: 0,
        text: String::new(),
    };
    let mut fence: Option<(char, usize)> = None;
    let mut front_matter = markdown.starts_with("---\n");
    for (i, line) in markdown.lines().enumerate() {
        if front_matter {
            // YAML front matter is metadata, not prose.
            if i > 0 && line.trim_end() == "---" {
                front_matter = false;
            }
            continue;
        }
        let trimmed = line.trim_start();
        if let Some((ch, len)) = fence {
            if trimmed.starts_with(&ch.to_string().repeat(len))
                && trimmed.trim_end().chars().all(|c| c == ch)
            {
                fence = None;
            } else {
                // Code is kept: commands such as `plat db rotate-credentials`
                // are what people search for.
                push_line(&mut current.text, line.trim());
            }
            continue;
        }
        if let Some(open) = fence_open(trimmed) {
            // The opening line holds only the language tag: dropped.
            fence = Some(open);
            continue;
        }
        if let Some((level, raw)) = atx_heading(line) {
            if !current.heading_path.is_empty() || !current.text.trim().is_empty() {
                out.push(std::mem::take(&mut current));
            }
            let (text, custom_id) = strip_attr_list(raw);
            let heading = inline_text(text);
            let anchor = unique(custom_id.unwrap_or_else(|| slugify(&heading)), &mut used);
            stack.retain(|(l, _)| *l < level);
            stack.push((level, heading.clone()));
            current = Section {
                heading,
                heading_path: stack.iter().map(|(_, h)| h.clone()).collect(),
                anchor,
                level,
                text: String::new(),
            };
            continue;
        }
        push_line(&mut current.text, &clean_line(line));
    }
    if !current.heading_path.is_empty() || !current.text.trim().is_empty() {
        out.push(current);
    }
    out
}

fn push_line(text: &mut String, line: &str) {
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(line);
}

/// "```yaml" / "~~~" opens a fence: its character and length.
fn fence_open(line: &str) -> Option<(char, usize)> {
    let ch = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = line.chars().take_while(|c| *c == ch).count();
    (len >= 3).then_some((ch, len))
}

/// `## Heading ##` → (2, "Heading").
fn atx_heading(line: &str) -> Option<(u8, &str)> {
    // Up to three spaces of indentation; four make an indented code block.
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let level = rest.bytes().take_while(|b| *b == b'#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let after = &rest[level..];
    if !after.is_empty() && !after.starts_with([' ', '\t']) {
        return None;
    }
    let text = after.trim().trim_end_matches('#').trim_end();
    Some((level as u8, text))
}

/// `Title {#custom-id .class}` → ("Title", Some("custom-id")) — attr_list.
fn strip_attr_list(text: &str) -> (&str, Option<String>) {
    let t = text.trim_end();
    if let (true, Some(open)) = (t.ends_with('}'), t.rfind('{')) {
        let inner = &t[open + 1..t.len() - 1];
        if inner.trim_start().starts_with(['#', '.', ':']) {
            let id = inner
                .split_whitespace()
                .find_map(|a| a.strip_prefix('#'))
                .map(str::to_owned);
            return (t[..open].trim_end(), id);
        }
    }
    (t, None)
}

/// A heading's text as rendered: links by their text, no code ticks or
/// emphasis marks.
fn inline_text(text: &str) -> String {
    let linked = links(text);
    linked
        .replace("**", "")
        .replace("__", "")
        .replace('`', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `[text](url)` → `text`, `![alt](src)` → `alt`; reference links keep text.
fn links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|e| close + e) else {
            break;
        };
        let before = rest[..open].strip_suffix('!').unwrap_or(&rest[..open]);
        out.push_str(before);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A body line without block markup: admonition markers, table pipes and
/// rules, list bullets, quote marks, HTML comments.
fn clean_line(line: &str) -> String {
    let t = line.trim();
    // Table separator rows carry nothing.
    if t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) {
        return String::new();
    }
    if t.starts_with("<!--") {
        return String::new();
    }
    let t = ["!!!", "???+", "???"]
        .iter()
        .find_map(|m| t.strip_prefix(m))
        .map(|rest| {
            // `!!! note "Title"`: the kind is noise, the title is prose.
            let rest = rest.trim_start();
            let kind_end = rest.find(' ').unwrap_or(rest.len());
            rest[kind_end..].trim().trim_matches('"').to_owned()
        })
        .unwrap_or_else(|| t.to_owned());
    let t = t.trim_start_matches('>').trim_start();
    let t = t
        .strip_prefix("- ")
        .or_else(|| t.strip_prefix("* "))
        .unwrap_or(t);
    let t = t.replace('|', " ");
    inline_text(&t)
}

/// MkDocs' (Python-Markdown toc) slug: ASCII, lowercase, characters other
/// than word characters, spaces and dashes dropped, runs of spaces and dashes
/// made one dash.
pub fn slugify(heading: &str) -> String {
    let kept: String = heading
        .chars()
        .filter(|c| c.is_ascii())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || c.is_whitespace())
        .collect::<String>()
        .trim()
        .to_lowercase();
    let mut out = String::with_capacity(kept.len());
    let mut dash = false;
    for c in kept.chars() {
        if c == '-' || c.is_whitespace() {
            dash = true;
        } else {
            if dash {
                out.push('-');
            }
            dash = false;
            out.push(c);
        }
    }
    if dash {
        out.push('-');
    }
    out
}

/// A repeated id gets `_1`, `_2`, … as Python-Markdown does.
fn unique(id: String, used: &mut BTreeSet<String>) -> String {
    let mut candidate = id.clone();
    let mut n = 1;
    while used.contains(&candidate) {
        candidate = format!("{id}_{n}");
        n += 1;
    }
    used.insert(candidate.clone());
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_mkdocs_slugs() {
        assert_eq!(slugify("Preview lifetime (TTL)"), "preview-lifetime-ttl");
        assert_eq!(
            slugify("Asking questions (office hours)"),
            "asking-questions-office-hours"
        );
        assert_eq!(slugify("Golden-path defaults"), "golden-path-defaults");
        assert_eq!(slugify("What's new in 2.0?"), "whats-new-in-20");
        assert_eq!(
            slugify("gRPC  services - and health"),
            "grpc-services-and-health"
        );
    }

    #[test]
    fn headings_nest_and_repeated_ids_are_numbered() {
        let md = "# Page\n\nIntro.\n\n## Backups\n\nDaily.\n\n### Restore\n\nWithin 7 days.\n\n## Other\n\n### Restore\n\nAgain.\n";
        let s = split("Page title", md);
        let heads: Vec<_> = s
            .iter()
            .map(|s| (s.heading_path.join(" > "), s.anchor.as_str()))
            .collect();
        assert_eq!(
            heads,
            vec![
                ("Page".to_owned(), "page"),
                ("Page > Backups".to_owned(), "backups"),
                ("Page > Backups > Restore".to_owned(), "restore"),
                ("Page > Other".to_owned(), "other"),
                ("Page > Other > Restore".to_owned(), "restore_1"),
            ]
        );
        assert_eq!(s[2].text, "Within 7 days.");
    }

    #[test]
    fn code_is_kept_without_its_language_tag_and_fenced_hashes_are_not_headings() {
        let md = "## Rotating\n\nRun this:\n\n```bash\n# rotate now\nplat db rotate-credentials orders-db\n```\n\nDone.\n";
        let s = split("T", md);
        assert_eq!(s.len(), 1);
        assert!(s[0].text.contains("plat db rotate-credentials orders-db"));
        assert!(s[0].text.contains("# rotate now"));
        assert!(!s[0].text.contains("bash"));
    }

    #[test]
    fn markup_noise_is_dropped() {
        let md = "## Sizes {#sizes-table}\n\n| Size | vCPU |\n| --- | --- |\n| `small` | 2 |\n\n!!! warning \"Mind the cost\"\n    See [the cost page](../governance/cost.md) and **budgets**.\n";
        let s = split("T", md);
        assert_eq!(s[0].anchor, "sizes-table");
        assert_eq!(s[0].heading, "Sizes");
        assert!(!s[0].text.contains('|'));
        assert!(!s[0].text.contains("cost.md"));
        assert!(s[0].text.contains("small 2"));
        assert!(s[0].text.contains("Mind the cost"));
        assert!(s[0].text.contains("See the cost page and budgets."));
    }

    #[test]
    fn text_before_any_heading_is_named_by_the_title() {
        let s = split("Home", "Welcome.\n\n## Next\n\nMore.\n");
        assert_eq!(s[0].heading, "Home");
        assert_eq!(s[0].anchor, "");
        assert_eq!(s[0].level, 0);
    }
}
