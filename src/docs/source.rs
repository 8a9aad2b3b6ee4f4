//! Reading a docs root in the MkDocs/TechDocs layout: `mkdocs.yml` for the
//! nav's page titles (and `docs_dir`), every `.md` file under the docs folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::DocsError;

/// One Markdown page of a docs root.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Relative to the docs root, `/`-separated: `docs/databases/postgres.md`
    /// (what eval files and people name).
    pub path: String,
    /// Relative to the docs folder: `databases/postgres.md` (what the nav and
    /// MkDocs URLs use).
    pub doc_path: String,
    /// The nav's title, else the page's first `# ` heading, else its file name.
    pub title: Option<String>,
    pub markdown: String,
}

/// What `mkdocs.yml` says about a root: where the pages are and their
/// nav titles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    /// The docs folder (`docs_dir`, default `docs`), relative to the root.
    pub docs_dir: String,
    /// The nav's title of each page, by its path under the docs folder.
    pub titles: BTreeMap<String, String>,
}

/// The pages under `root`, sorted by path.
pub fn read(root: &Path) -> Result<Vec<Page>, DocsError> {
    let layout = read_layout(root)?;
    let dir = root.join(&layout.docs_dir);
    let mut pages = Vec::new();
    for (file, _) in files(&dir)? {
        pages.push(read_page(root, &dir, &file, &layout)?);
    }
    Ok(pages)
}

/// `root`'s `mkdocs.yml` read (a root without one has the defaults).
pub fn read_layout(root: &Path) -> Result<Layout, DocsError> {
    let mkdocs = mkdocs_file(root);
    if !mkdocs.is_file() {
        return Ok(Layout {
            docs_dir: "docs".to_owned(),
            titles: BTreeMap::new(),
        });
    }
    let text = std::fs::read_to_string(&mkdocs).map_err(|e| DocsError::Read {
        path: mkdocs.clone(),
        source: e,
    })?;
    let (docs_dir, titles) = parse_mkdocs(&text).map_err(|detail| DocsError::Mkdocs {
        path: mkdocs.clone(),
        detail,
    })?;
    Ok(Layout { docs_dir, titles })
}

/// Where a root's `mkdocs.yml` is.
pub fn mkdocs_file(root: &Path) -> PathBuf {
    root.join("mkdocs.yml")
}

/// Every `.md` file under the docs folder `dir` with its metadata (what
/// tells a changed file without reading it), sorted by path.
pub fn files(dir: &Path) -> Result<Vec<(PathBuf, std::fs::Metadata)>, DocsError> {
    if !dir.is_dir() {
        return Err(DocsError::NoDocsDir(dir.to_owned()));
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// One page: `file` under the docs folder `dir` of `root`.
pub fn read_page(root: &Path, dir: &Path, file: &Path, layout: &Layout) -> Result<Page, DocsError> {
    let markdown = std::fs::read_to_string(file).map_err(|e| DocsError::Read {
        path: file.to_owned(),
        source: e,
    })?;
    let rel = |base: &Path| {
        file.strip_prefix(base)
            .unwrap_or(file)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/")
    };
    let doc_path = rel(dir);
    Ok(Page {
        path: rel(root),
        title: layout.titles.get(&doc_path).cloned(),
        doc_path,
        markdown,
    })
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) -> Result<(), DocsError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DocsError::Read {
        path: dir.to_owned(),
        source: e,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|e| DocsError::Read {
                path: dir.to_owned(),
                source: e,
            })?
            .path();
        // Followed like `is_dir` follows links: a linked page is a page.
        let is_md = path.extension().is_some_and(|e| e == "md");
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if is_md => {
                return Err(DocsError::Read {
                    path: path.clone(),
                    source: e,
                })
            }
            // A dangling link to something that is not a page.
            Err(_) => continue,
        };
        if meta.is_dir() {
            walk(&path, out)?;
        } else if is_md {
            out.push((path, meta));
        }
    }
    Ok(())
}

/// `mkdocs.yml`'s `docs_dir` (default `docs`) and the nav's title of each
/// page (by its path under the docs folder).
///
/// MkDocs files may hold tags such as `!!python/name:…` in other keys; only
/// `docs_dir` and `nav` are read, and a document that does not parse as
/// plain YAML is an error rather than a silently untitled site.
pub fn parse_mkdocs(text: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let doc: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let docs_dir = doc
        .get("docs_dir")
        .and_then(|v| v.as_str())
        .unwrap_or("docs")
        .trim_end_matches('/')
        .to_owned();
    let mut titles = BTreeMap::new();
    if let Some(nav) = doc.get("nav") {
        nav_titles(nav, &mut titles);
    }
    Ok((docs_dir, titles))
}

/// A nav is a list of `Title: page.md`, `Section: [..]` or bare `page.md`.
fn nav_titles(nav: &serde_norway::Value, out: &mut BTreeMap<String, String>) {
    use serde_norway::Value;
    match nav {
        Value::Sequence(items) => items.iter().for_each(|i| nav_titles(i, out)),
        Value::Mapping(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    (Some(title), Value::String(page)) if page.ends_with(".md") => {
                        out.insert(page.trim_start_matches("./").to_owned(), title.to_owned());
                    }
                    (_, v @ (Value::Sequence(_) | Value::Mapping(_))) => nav_titles(v, out),
                    _ => {}
                }
            }
        }
        // A bare page keeps the title from its own heading.
        _ => {}
    }
}

/// MkDocs' URL of a page (directory URLs): `databases/postgres.md` →
/// `databases/postgres/`, `index.md` → ``, `guide/index.md` → `guide/`.
pub fn page_url(doc_path: &str) -> String {
    let stem = doc_path.strip_suffix(".md").unwrap_or(doc_path);
    let lower = stem.to_ascii_lowercase();
    if lower == "index" || lower == "readme" {
        return String::new();
    }
    for suffix in ["/index", "/readme"] {
        if lower.ends_with(suffix) {
            return format!("{}/", &stem[..stem.len() - suffix.len()]);
        }
    }
    format!("{stem}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nav_titles_come_from_nested_sections_and_bare_pages_have_none() {
        let yml = "site_name: X\nnav:\n  - Home: index.md\n  - Databases:\n      - PostgreSQL: databases/postgres.md\n      - databases/mysql.md\n";
        let (dir, titles) = parse_mkdocs(yml).unwrap();
        assert_eq!(dir, "docs");
        assert_eq!(titles["index.md"], "Home");
        assert_eq!(titles["databases/postgres.md"], "PostgreSQL");
        assert!(!titles.contains_key("databases/mysql.md"));
    }

    #[test]
    fn docs_dir_is_read() {
        let (dir, _) = parse_mkdocs("docs_dir: content/\n").unwrap();
        assert_eq!(dir, "content");
    }

    #[test]
    fn urls_are_mkdocs_directory_urls() {
        assert_eq!(page_url("databases/postgres.md"), "databases/postgres/");
        assert_eq!(page_url("index.md"), "");
        assert_eq!(page_url("guide/index.md"), "guide/");
    }

    #[test]
    fn the_sample_site_is_read_with_nav_titles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/docs");
        let pages = read(&root).unwrap();
        assert_eq!(pages.len(), 18);
        let pg = pages
            .iter()
            .find(|p| p.path == "docs/databases/postgres.md")
            .unwrap();
        assert_eq!(pg.title.as_deref(), Some("PostgreSQL"));
        assert_eq!(pg.doc_path, "databases/postgres.md");
    }
}
