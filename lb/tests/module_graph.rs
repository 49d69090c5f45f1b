//! No import circle inside the crate: the modules of lb/src, read as a
//! graph of `crate::` paths, have no cycle, and the shared state and the
//! pure DNS record stay leaves of the runtime.  A circle is what made the
//! runtime, the listeners and the admin API (and the resolver and the
//! server state) impossible to change or test one at a time.
//!
//! Each top-level module (`lb/src/x.rs`, or everything under `lb/src/x/`)
//! is one node; an edge is any `crate::y` path in its code (not in its
//! comments: a doc link is not a dependency), including grouped imports
//! such as `use crate::{y, z::w}`.  `super::` and `self::` stay inside a
//! module and are not edges.  The binary (main.rs) is its own crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules each piece of code names through `crate::`.
fn graph(files: &[(String, String)]) -> Graph {
    let mut graph = Graph::new();
    for (module, text) in files {
        let targets = graph.entry(module.clone()).or_default();
        for target in crate_paths(&strip_comments(text)) {
            if target != *module {
                targets.insert(target);
            }
        }
    }
    graph
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment after every `crate::`, and every first segment of a
/// `crate::{...}` group.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[i + "crate::".len()..];
        if preceded_by_ident {
            continue; // `warren_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = closing_brace(group);
            found.extend(group_heads(&group[..end]));
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

/// Where the brace opened just before `text` closes.
fn closing_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The first segment of each comma-separated item of a `{...}` group.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && depth == 0 && !c.is_whitespace() => {
                heads.push(ident(&group[i..]));
                start = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// A cycle, as the modules along it (the first repeated at the end).
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Every .rs file under lb/src, keyed by its top-level module, but main.rs
/// (its own crate) and lib.rs (it only declares the modules).
fn lb_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, module: Option<&str>, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let owner = module.unwrap_or(&name).to_owned();
            if path.is_dir() {
                walk(&path, Some(&owner), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if module.is_none() && (name == "main" || name == "lib") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((owner, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
        &mut out,
    );
    out
}

#[test]
fn no_module_of_lb_src_is_part_of_an_import_circle() {
    let graph = graph(&lb_sources());
    assert!(
        graph.len() > 10 && graph["runtime"].contains("proxy"),
        "the sources were not read: {graph:?}"
    );
    if let Some(cycle) = cycle(&graph) {
        panic!(
            "lb/src modules import each other in a circle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_shared_state_and_the_dns_record_are_leaves_of_the_runtime() {
    let graph = graph(&lb_sources());
    for (leaf, never) in [
        ("live", ["runtime", "proxy", "admin", "process"].as_slice()),
        ("resolution", ["server", "dns", "runtime"].as_slice()),
    ] {
        let imports = &graph[leaf];
        for module in never {
            assert!(
                !imports.contains(*module),
                "{leaf} must not import {module}: {imports:?}"
            );
        }
    }
}

#[test]
fn the_check_finds_a_circle_through_grouped_imports_and_ignores_comments() {
    let file = |module: &str, text: &str| (module.to_owned(), text.to_owned());
    let circle = [
        file("a", "use crate::b::Thing;\n"),
        file(
            "b",
            "use crate::{\n    c::{self, Other},\n    config,\n};\nuse super::inner;\n",
        ),
        file("c", "fn f() { crate::a::g(); }\n"),
    ];
    assert_eq!(
        cycle(&graph(&circle)),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let documented = [
        file("a", "use crate::b::Thing;\n"),
        file(
            "b",
            "/// Called by [`crate::a`].\nfn f() {} // see crate::a\n",
        ),
    ];
    assert_eq!(cycle(&graph(&documented)), None);
}
