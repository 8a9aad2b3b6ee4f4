//! The layering of ARCHITECTURE.md, checked: each top-level module of
//! `src/` may import (`crate::…`) only modules of a lower layer, so there is
//! no import loop between them. Test code (`#[cfg(test)]` modules) and
//! comments are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The layers, bottom first. Keep in step with ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    &["util"],
    &["domain"],
    &["catalog", "storage"],
    &["policy", "nlu", "drivers"],
    &["chat"],
    &[
        "requests",
        "answers",
        "notify",
        "scorecards",
        "docs",
        "report",
    ],
    &["engine"],
    // The config gathers every module's own section type.
    &["config"],
    // Edges and wiring may import anything (but not in a loop).
    &["slack", "discord", "hooks", "server", "app", "cli"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The source without comments and without `#[cfg(test)]` modules.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn imports(text: &str) -> BTreeSet<String> {
    let code = code(text);
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Top-level module → the top-level modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        // Test modules in files of their own (`src/x/tests/…`) are tests.
        let in_tests = rel.components().any(|c| c.as_os_str() == "tests");
        if top == "main" || top == "lib" || in_tests {
            continue;
        }
        let deps = imports(&fs::read_to_string(&f).unwrap());
        graph
            .entry(top.clone())
            .or_default()
            .extend(deps.into_iter().filter(|d| *d != top));
    }
    graph
}

#[test]
fn every_module_has_a_layer() {
    let missing: Vec<_> = graph().into_keys().filter(|m| layer(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in ARCHITECTURE.md and tests/architecture.rs: {missing:?}"
    );
}

#[test]
fn modules_import_only_lower_layers() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        let Some(own) = layer(module) else { continue };
        if own == LAYERS.len() - 1 {
            continue;
        }
        for dep in deps {
            match layer(dep) {
                Some(l) if l < own => {}
                Some(l) => wrong.push(format!("{module} (layer {own}) imports {dep} (layer {l})")),
                // Not a module of ours (a macro path or similar).
                None if !graph.contains_key(dep) => {}
                None => wrong.push(format!("{module} imports {dep}, which has no layer")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

/// A cycle in `graph`, if any, as the path that closes it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut found = path[i..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next) {
                if let Some(c) = visit(next, graph, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

/// The edges may import each other, but not in a loop either.
#[test]
fn no_import_loops() {
    if let Some(c) = cycle(&graph()) {
        panic!("import loop: {}", c.join(" → "));
    }
}

#[test]
fn the_checker_finds_loops() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}

#[test]
fn the_checker_sees_imports_and_skips_comments_and_tests() {
    let text = "use crate::domain::Action;\n// crate::engine in a comment\nfn f() { crate::util::x(); }\n#[cfg(test)]\nmod tests {\n    use crate::engine::Engine;\n}\n";
    let found: Vec<_> = imports(text).into_iter().collect();
    assert_eq!(found, ["domain", "util"]);
}
