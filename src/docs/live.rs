//! The docs as they are now: a snapshot questions are answered from, swapped
//! for a new one when a source changes.
//!
//! Each refresh pulls the git sources, then fingerprints every source
//! (`mkdocs.yml` and each page's modification time, size and file id) and
//! re-reads and re-splits only the pages whose fingerprint or nav title
//! changed; the index is rebuilt from the kept sections (milliseconds for
//! a few hundred pages) off to the side, and swapped in. A question being
//! answered keeps the snapshot it started with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::config::{DocsConfig, Origin};
use super::embed::Embedder;
use super::source::{self, Layout};
use super::{git, Docs, DocsError, DocsSource, SplitPage};

/// Cheap to clone; clones share one snapshot.
#[derive(Clone)]
pub struct LiveDocs {
    inner: Arc<Inner>,
}

struct Inner {
    current: RwLock<Option<Arc<Docs>>>,
    sources: Vec<DocsSource>,
    cache_dir: PathBuf,
    /// Held for a whole refresh: two never run at once.
    state: tokio::sync::Mutex<State>,
    watcher: Mutex<Option<tokio::task::AbortHandle>>,
    /// `[docs.embeddings]`: what embeds each new snapshot's sections.
    embedder: Option<Arc<Embedder>>,
}

impl std::fmt::Debug for LiveDocs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveDocs")
            .field("sources", &self.inner.sources.len())
            .finish_non_exhaustive()
    }
}

/// What is kept of each source between refreshes (`None`: never read).
#[derive(Default)]
struct State {
    sources: Vec<Option<SourceCache>>,
}

/// One source as last read successfully.
#[derive(Debug, Clone, Default)]
struct SourceCache {
    mkdocs: Option<Stamp>,
    layout: Layout,
    pages: BTreeMap<PathBuf, CachedPage>,
    /// For a git source, the commit it was read at.
    head: Option<String>,
}

#[derive(Debug, Clone)]
struct CachedPage {
    stamp: Stamp,
    title: Option<String>,
    page: Arc<SplitPage>,
}

/// What tells a changed file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    /// The file's inode on Unix: git and most editors write a new file
    /// rather than rewrite one, which a coarse mtime might not show.
    id: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let id = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let id = 0;
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            id,
        }
    }
}

/// How one source's pages differ from the last read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added + self.changed + self.removed == 0
    }
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refresh {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    /// Sections indexed after a rebuild (0: nothing rebuilt).
    pub sections: usize,
    /// Whether a new snapshot was swapped in.
    pub rebuilt: bool,
    /// The sources that could not be read or pulled, with why; each keeps
    /// its last good pages.
    pub failed: Vec<String>,
    pub took: Duration,
}

impl LiveDocs {
    /// The sources of `config`, nothing read yet: no docs until the first
    /// [`LiveDocs::refresh_now`].
    pub fn new(config: &DocsConfig) -> LiveDocs {
        let embedder = config.embeddings.as_ref().and_then(|e| match Embedder::new(e) {
            Ok(e) => Some(Arc::new(e)),
            Err(err) => {
                tracing::warn!(error = %err, "the embeddings client could not be built; BM25 alone");
                None
            }
        });
        LiveDocs {
            inner: Arc::new(Inner {
                current: RwLock::new(None),
                sources: config.sources.clone(),
                cache_dir: config.cache_dir(),
                state: tokio::sync::Mutex::new(State {
                    sources: vec![None; config.sources.len()],
                }),
                watcher: Mutex::new(None),
                embedder,
            }),
        }
    }

    /// The sources of `config`, read now from disk (blocking): folders,
    /// and git sources from an earlier clone (pulled by the first
    /// refresh). When a source cannot be read there are no docs, as
    /// before (half the docs would mislead); a refresh that reads every
    /// source brings them.
    pub fn load(config: &DocsConfig) -> LiveDocs {
        let live = LiveDocs::new(config);
        let mut state = State {
            sources: vec![None; config.sources.len()],
        };
        let scan: Vec<bool> = live
            .inner
            .sources
            .iter()
            .map(|s| match &s.origin {
                Origin::Dir(_) => true,
                Origin::Git(g) => git::checkout_dir(&live.inner.cache_dir, g)
                    .join(".git")
                    .is_dir(),
            })
            .collect();
        let heads = vec![None; scan.len()];
        let started = Instant::now();
        let (mut refresh, docs) = update(&live.inner, &mut state.sources, &scan, &heads);
        refresh.took = started.elapsed();
        for f in &refresh.failed {
            tracing::warn!(error = %f, "the docs could not be indexed; questions go to the platform team");
        }
        if let Some(docs) = docs {
            tracing::info!(
                pages = refresh.added,
                sections = refresh.sections,
                ms = refresh.took.as_millis() as u64,
                "docs indexed"
            );
            live.swap(docs);
        }
        // Nobody else holds the handle yet.
        if let Ok(mut s) = live.inner.state.try_lock() {
            *s = state;
        }
        live
    }

    /// Docs built elsewhere, never refreshed (tests, one-off tools).
    pub fn fixed(docs: Docs) -> LiveDocs {
        let live = LiveDocs::new(&DocsConfig::default());
        live.swap(docs);
        live
    }

    /// The docs now; `None` until every source has been read once. The
    /// snapshot stays whole for as long as the caller holds it.
    pub fn current(&self) -> Option<Arc<Docs>> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn swap(&self, docs: Docs) {
        // Built before the lock is taken: the lock is held for a pointer
        // swap, never while indexing.
        let docs = Arc::new(docs);
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(docs);
    }

    /// Pulls the git sources, re-reads what changed and swaps in new docs
    /// when anything did. A source that fails keeps its last good pages
    /// (and is logged with why).
    pub async fn refresh_now(&self) -> Refresh {
        let started = Instant::now();
        let mut state = self.inner.state.lock().await;
        let mut failed = Vec::new();
        let mut scan = Vec::new();
        let mut heads = Vec::new();
        for (i, s) in self.inner.sources.iter().enumerate() {
            match &s.origin {
                Origin::Dir(_) => {
                    scan.push(true);
                    heads.push(None);
                }
                Origin::Git(g) => match git::sync(&self.inner.cache_dir, g).await {
                    Ok(head) => {
                        let read_at = state.sources[i].as_ref().and_then(|c| c.head.as_deref());
                        // The same commit: nothing to look at.
                        scan.push(read_at != Some(head.as_str()));
                        heads.push(Some(head));
                    }
                    Err(e) => {
                        let e = format!("{}: {e}", s.describe());
                        tracing::warn!(error = %e, "pulling a docs source failed; keeping its last good docs");
                        failed.push(e);
                        scan.push(false);
                        heads.push(None);
                    }
                },
            }
        }
        let inner = self.inner.clone();
        let mut caches = std::mem::take(&mut state.sources);
        // Reading files and indexing block: off the async workers.
        let done = tokio::task::spawn_blocking(move || {
            let out = update(&inner, &mut caches, &scan, &heads);
            (caches, out)
        })
        .await;
        let (caches, (mut refresh, docs)) = match done {
            Ok(d) => d,
            Err(e) => {
                // A panic while reading: the next refresh starts afresh.
                tracing::error!(error = %e, "refreshing the docs failed");
                state.sources = vec![None; self.inner.sources.len()];
                return Refresh {
                    failed: vec![e.to_string()],
                    took: started.elapsed(),
                    ..Refresh::default()
                };
            }
        };
        state.sources = caches;
        for f in &refresh.failed {
            tracing::warn!(error = %f, "reading a docs source failed; keeping its last good docs");
        }
        failed.append(&mut refresh.failed);
        refresh.failed = failed;
        refresh.took = started.elapsed();
        if let Some(docs) = docs {
            self.swap(docs);
            tracing::info!(
                added = refresh.added,
                changed = refresh.changed,
                removed = refresh.removed,
                sections = refresh.sections,
                ms = refresh.took.as_millis() as u64,
                "docs re-indexed"
            );
        } else {
            tracing::debug!(ms = refresh.took.as_millis() as u64, "docs unchanged");
        }
        // Also after an earlier failure to embed: the server may be back.
        self.embed_current().await;
        refresh
    }

    /// Embeds the current snapshot's sections when `[docs.embeddings]` is
    /// set and they are not yet; a failure leaves BM25 alone (logged) until
    /// the next refresh tries again.
    pub async fn embed_current(&self) {
        let (Some(embedder), Some(docs)) = (&self.inner.embedder, self.current()) else {
            return;
        };
        if docs.embedded() {
            return;
        }
        let started = Instant::now();
        match docs.embed(embedder.clone()).await {
            Ok(()) => tracing::info!(
                sections = docs.sections(),
                ms = started.elapsed().as_millis() as u64,
                "docs embedded"
            ),
            Err(e) => tracing::warn!(
                embedder = %embedder.describe(),
                error = %e,
                "embedding the docs failed; BM25 alone until the next refresh"
            ),
        }
    }

    /// Refreshes every `every` (the first time at once when there are git
    /// sources to clone or pull; `None`: only that) until [`LiveDocs::stop`].
    pub fn spawn_watcher(&self, every: Option<Duration>) {
        let has_git = self
            .inner
            .sources
            .iter()
            .any(|s| matches!(s.origin, Origin::Git(_)));
        let me = self.clone();
        let task = tokio::spawn(async move {
            if has_git {
                me.refresh_now().await;
            } else {
                me.embed_current().await;
            }
            let Some(every) = every else { return };
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.refresh_now().await;
            }
        });
        if let Some(old) = self
            .inner
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(task.abort_handle())
        {
            old.abort();
        }
    }

    /// Stops the watcher; a git command it was running is killed.
    pub fn stop(&self) {
        if let Some(w) = self
            .inner
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            w.abort();
        }
    }
}

/// The root a source's pages are read from.
fn root_of(inner: &Inner, s: &DocsSource) -> PathBuf {
    match &s.origin {
        Origin::Dir(d) => d.clone(),
        Origin::Git(g) => git::root(&inner.cache_dir, g),
    }
}

/// Re-reads the sources marked in `scan` (the others keep what they had);
/// new docs when anything changed and every source has been read.
fn update(
    inner: &Inner,
    caches: &mut [Option<SourceCache>],
    scan: &[bool],
    heads: &[Option<String>],
) -> (Refresh, Option<Docs>) {
    let mut refresh = Refresh::default();
    let mut dirty = false;
    for (i, s) in inner.sources.iter().enumerate() {
        if !scan[i] {
            continue;
        }
        let root = root_of(inner, s);
        match read_source(&root, &s.url_template, caches[i].as_ref()) {
            Ok((mut cache, diff)) => {
                refresh.added += diff.added;
                refresh.changed += diff.changed;
                refresh.removed += diff.removed;
                // A source read the first time counts even when empty.
                dirty |= !diff.is_empty() || caches[i].is_none();
                cache.head = heads[i].clone();
                caches[i] = Some(cache);
            }
            Err(e) => refresh.failed.push(format!("{}: {e}", s.describe())),
        }
    }
    if !dirty || caches.iter().any(Option::is_none) {
        return (refresh, None);
    }
    let pages = caches
        .iter()
        .flatten()
        .flat_map(|c| c.pages.values().map(|p| p.page.as_ref()));
    match Docs::from_pages(pages) {
        Ok(docs) => {
            refresh.sections = docs.sections();
            refresh.rebuilt = true;
            (refresh, Some(docs))
        }
        Err(e) => {
            refresh.failed.push(format!("indexing: {e}"));
            (refresh, None)
        }
    }
}

/// `root` read again, reusing from `old` every page whose fingerprint and
/// nav title are the same; the result and how it differs from `old`.
fn read_source(
    root: &Path,
    url_template: &str,
    old: Option<&SourceCache>,
) -> Result<(SourceCache, Diff), DocsError> {
    let mkdocs_path = source::mkdocs_file(root);
    let mkdocs = match std::fs::metadata(&mkdocs_path) {
        Ok(m) => Some(Stamp::of(&m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(DocsError::Read {
                path: mkdocs_path,
                source: e,
            })
        }
    };
    let layout = match old {
        Some(o) if o.mkdocs == mkdocs => o.layout.clone(),
        _ => source::read_layout(root)?,
    };
    let dir = root.join(&layout.docs_dir);
    let mut diff = Diff::default();
    let mut pages = BTreeMap::new();
    for (file, meta) in source::files(&dir)? {
        let stamp = Stamp::of(&meta);
        let doc_path = file
            .strip_prefix(&dir)
            .unwrap_or(&file)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let title = layout.titles.get(&doc_path).cloned();
        let before = old.and_then(|o| o.pages.get(&file));
        let cached = match before {
            Some(b) if b.stamp == stamp && b.title == title => {
                diff.unchanged += 1;
                b.clone()
            }
            _ => {
                let page = source::read_page(root, &dir, &file, &layout)?;
                if before.is_some() {
                    diff.changed += 1;
                } else {
                    diff.added += 1;
                }
                CachedPage {
                    stamp,
                    title,
                    page: Arc::new(SplitPage::new(url_template, &page)?),
                }
            }
        };
        pages.insert(file, cached);
    }
    if let Some(o) = old {
        diff.removed = o.pages.keys().filter(|k| !pages.contains_key(*k)).count();
    }
    Ok((
        SourceCache {
            mkdocs,
            layout,
            pages,
            head: None,
        },
        diff,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(dir: &Path) {
        std::fs::create_dir_all(dir.join("docs/guide")).unwrap();
        std::fs::write(
            dir.join("mkdocs.yml"),
            "site_name: T\nnav:\n  - Home: index.md\n  - Guide: guide/start.md\n",
        )
        .unwrap();
        std::fs::write(dir.join("docs/index.md"), "# Home\n\nWelcome.\n").unwrap();
        std::fs::write(
            dir.join("docs/guide/start.md"),
            "# Start\n\n## Install\n\nRun the installer.\n",
        )
        .unwrap();
    }

    /// A later write with a different length: the fingerprint changes even
    /// where mtimes are coarse.
    fn rewrite(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_first_read_adds_every_page() {
        let tmp = tempfile::tempdir().unwrap();
        site(tmp.path());
        let (cache, diff) = read_source(tmp.path(), "{{ path }}", None).unwrap();
        assert_eq!(
            diff,
            Diff {
                added: 2,
                ..Diff::default()
            }
        );
        assert_eq!(cache.pages.len(), 2);
        assert!(cache.mkdocs.is_some());
    }

    #[test]
    fn nothing_changed_reuses_every_page() {
        let tmp = tempfile::tempdir().unwrap();
        site(tmp.path());
        let (first, _) = read_source(tmp.path(), "{{ path }}", None).unwrap();
        let (second, diff) = read_source(tmp.path(), "{{ path }}", Some(&first)).unwrap();
        assert!(diff.is_empty());
        assert_eq!(diff.unchanged, 2);
        for (k, p) in &second.pages {
            assert!(
                Arc::ptr_eq(&p.page, &first.pages[k].page),
                "{k:?} was re-read"
            );
        }
    }

    #[test]
    fn a_changed_added_and_removed_page_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        site(tmp.path());
        let (first, _) = read_source(tmp.path(), "{{ path }}", None).unwrap();
        rewrite(
            &tmp.path().join("docs/guide/start.md"),
            "# Start\n\n## Install\n\nRun the new installer with --fast.\n",
        );
        std::fs::remove_file(tmp.path().join("docs/index.md")).unwrap();
        std::fs::write(tmp.path().join("docs/faq.md"), "# FAQ\n\nAsk.\n").unwrap();
        let (second, diff) = read_source(tmp.path(), "{{ path }}", Some(&first)).unwrap();
        assert_eq!(
            diff,
            Diff {
                added: 1,
                changed: 1,
                removed: 1,
                unchanged: 0
            }
        );
        assert_eq!(second.pages.len(), 2);
    }

    #[test]
    fn a_new_nav_title_re_splits_only_its_page() {
        let tmp = tempfile::tempdir().unwrap();
        site(tmp.path());
        let (first, _) = read_source(tmp.path(), "{{ path }}", None).unwrap();
        rewrite(
            &tmp.path().join("mkdocs.yml"),
            "site_name: T\nnav:\n  - Home: index.md\n  - Getting started: guide/start.md\n",
        );
        let (_, diff) = read_source(tmp.path(), "{{ path }}", Some(&first)).unwrap();
        assert_eq!((diff.changed, diff.unchanged), (1, 1));
    }

    #[test]
    fn a_broken_mkdocs_yml_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        site(tmp.path());
        let (first, _) = read_source(tmp.path(), "{{ path }}", None).unwrap();
        rewrite(&tmp.path().join("mkdocs.yml"), "nav: [unclosed\n");
        assert!(matches!(
            read_source(tmp.path(), "{{ path }}", Some(&first)),
            Err(DocsError::Mkdocs { .. })
        ));
    }
}
