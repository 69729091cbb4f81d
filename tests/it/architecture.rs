//! The shape of `src/`, checked: no module imports another that imports it
//! back (between files, and between the top-level layers), and `main.rs`
//! only wires. Read from the source text, so a new cycle fails the suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as its module path (`crate::http::server`).
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        // Unit tests in files of their own (`tests.rs`, `*_tests.rs`) may reach anywhere.
        .filter(|f| {
            let stem = f.file_stem().unwrap_or_default().to_string_lossy();
            stem != "tests" && !stem.ends_with("_tests")
        })
        .map(|f| {
            let rel = f.strip_prefix(src()).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            let name = std::iter::once("crate".to_string())
                .chain(parts)
                .collect::<Vec<_>>()
                .join("::");
            (name, std::fs::read_to_string(&f).unwrap())
        })
        .collect()
}

/// The module a path names: its longest prefix that is a module.
fn owner(path: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|p| known.contains_key(p))
}

/// The modules one file uses: `crate::…` and `super::…` paths (braced groups
/// expanded one level) and `use child::…` of its own submodules. Unit tests
/// (`#[cfg(test)]` and what follows) are left out: they may reach anywhere.
fn uses(module: &str, text: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let me: Vec<&str> = module.split("::").collect();
    let is_folder = known.keys().any(|k| k.starts_with(&format!("{module}::")));
    // `super` is the enclosing module, whether this is a folder's mod.rs or a file.
    let parent: Vec<&str> = me[..me.len().saturating_sub(1)].to_vec();
    let mut found = BTreeSet::new();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut rest = code;
    while let Some(at) = rest.find(['c', 's', 'u']) {
        let tail = &rest[at..];
        let boundary = rest[..at].chars().last().is_none_or(|c| !ident(c));
        let (base, after) = if !boundary {
            (None, &tail[1..])
        } else if let Some(t) = tail.strip_prefix("crate::") {
            (Some(vec!["crate"]), t)
        } else if let Some(t) = tail.strip_prefix("super::") {
            (Some(parent.clone()), t)
        } else if let Some(t) = tail.strip_prefix("use ").filter(|_| is_folder) {
            (Some(me.clone()), t)
        } else {
            (None, &tail[1..])
        };
        rest = after;
        let Some(base) = base else { continue };
        let path_text: String = after.chars().take_while(|&c| ident(c) || c == ':').collect();
        let mut segments: Vec<&str> = path_text.split("::").filter(|s| !s.is_empty()).collect();
        let braced = after[path_text.len()..].starts_with('{');
        let mut targets = Vec::new();
        if braced {
            let group = &after[path_text.len() + 1..after.find('}').unwrap_or(after.len())];
            for item in group.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() && first != "self" {
                    targets.push([&segments[..], &[first]].concat());
                }
            }
        }
        if segments.last() == Some(&"self") {
            segments.pop();
        }
        targets.push(segments);
        for target in targets {
            let full: Vec<&str> = base.iter().copied().chain(target).collect();
            if let Some(m) = owner(&full, known) {
                if m != module && m != "crate" {
                    found.insert(m);
                }
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    known
        .iter()
        .map(|(m, text)| (m.clone(), uses(m, text, &known)))
        .collect()
}

/// A cycle through `start`, if any (depth-first).
fn cycle_from(start: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        start: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(node).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if visit(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    visit(start, start, graph, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let g = graph();
    assert!(g.len() > 20, "found only {} modules: {:?}", g.len(), g.keys());
    let cycles: Vec<_> = g.keys().filter_map(|m| cycle_from(m, &g)).collect();
    assert!(cycles.is_empty(), "import cycles between files: {cycles:#?}");
}

#[test]
fn no_layer_imports_one_that_imports_it_back() {
    let layer = |m: &str| m.split("::").nth(1).unwrap_or("crate").to_string();
    let mut layers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, used) in graph() {
        let entry = layers.entry(layer(&m)).or_default();
        entry.extend(used.iter().map(|u| layer(u)).filter(|l| *l != layer(&m)));
    }
    let cycles: Vec<_> = layers.keys().filter_map(|l| cycle_from(l, &layers)).collect();
    assert!(
        cycles.is_empty(),
        "import cycles between layers: {cycles:#?}\n{layers:#?}"
    );
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let known: BTreeMap<String, String> = [
        ("crate::a".to_string(), "use crate::b::Thing;".to_string()),
        ("crate::b".to_string(), "fn f() { crate::a::g() }".to_string()),
    ]
    .into();
    let g: BTreeMap<_, _> = known.iter().map(|(m, t)| (m.clone(), uses(m, t, &known))).collect();
    assert_eq!(
        cycle_from("crate::a", &g),
        Some(vec!["crate::a".into(), "crate::b".into()])
    );
}

#[test]
fn main_only_wires() {
    let main = std::fs::read_to_string(src().join("main.rs")).unwrap();
    let functions = main.matches("fn ").count();
    assert_eq!(functions, 1, "main.rs has only `main`:\n{main}");
    assert!(main.lines().count() <= 40, "main.rs stays a short list of wiring");
}
