//! The gateway crate's module graph, read from its source: every `use` and
//! every inline `crate::…` / `super::…` path of a module's non-test code is
//! an edge to the module file that defines it. The graph must have no cycle
//! (a module that depends on another that depends back on it is one module
//! in two files, or a hidden data path). `mod.rs` files are indexes: their
//! children import siblings by their own paths, never through the parent.
//!
//! `cargo test --test architecture -- --nocapture` prints the graph that
//! `docs/architecture.md` lists.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`inspect::stream`), `""` for the crate root.
type Module = String;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The file of a module, if it has one of its own.
fn file_of(module: &str) -> Option<PathBuf> {
    if module.is_empty() {
        return Some(src().join("lib.rs"));
    }
    let rel = module.replace("::", "/");
    [
        src().join(format!("{rel}.rs")),
        src().join(format!("{rel}/mod.rs")),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Every module of the crate that has a file, test modules excluded.
fn modules() -> Vec<Module> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<Module>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let join = |n: &str| {
                if prefix.is_empty() {
                    n.to_string()
                } else {
                    format!("{prefix}::{n}")
                }
            };
            if path.is_dir() {
                if name != "tests" {
                    walk(&path, &join(&name), out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                match name.as_str() {
                    "lib" | "main" => {}
                    "mod" => out.push(prefix.to_string()),
                    "tests" => {}
                    n if n.ends_with("_tests") => {}
                    n => out.push(join(n)),
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), "", &mut out);
    out
}

/// The source without comments, string literals and everything from the
/// first `#[cfg(test)]` on (tests sit at the end of a file by convention).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(raw) = rest.strip_prefix("r#\"") {
            i += raw.find("\"#").map_or(rest.len(), |e| e + 5);
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            out.push_str("\"\"");
            i += j + 1;
        } else if rest.starts_with("b'") || rest.starts_with('\'') {
            // A char literal ('x', '\n') or a lifetime ('a): skip only a literal.
            let start = usize::from(rest.starts_with('b'));
            let lit = &rest[start..];
            let end = if lit.as_bytes().get(1) == Some(&b'\\') {
                lit[2..].find('\'').map(|e| e + 3)
            } else if lit.chars().nth(2) == Some('\'') {
                Some(lit.chars().take(2).map(char::len_utf8).sum::<usize>() + 1)
            } else {
                None
            };
            match end {
                Some(e) => {
                    out.push_str("' '");
                    i += start + e;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into whole paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap().trim().to_string()];
    };
    let prefix = tree[..open].trim().trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.to_string()
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// Every `crate::`/`super::`/`self::` path a module's code names.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` trees, braces and all.
    for (at, _) in code.match_indices("use ") {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = code[at..].find(';').map_or(code.len(), |e| at + e);
        let tree = &code[at + 4..end];
        // A path that starts with a name is relative to this module (a
        // child, or an external crate that will not resolve).
        out.extend(expand(tree).into_iter().map(|p| {
            if ["crate::", "super::", "self::"]
                .iter()
                .any(|r| p.starts_with(r))
            {
                p
            } else {
                format!("self::{p}")
            }
        }));
    }
    // Inline paths (`crate::envelope::body(…)`).
    let bytes = code.as_bytes();
    for root in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(root) {
            if at > 0
                && (bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':')
            {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[at..end].trim_end_matches(':').to_string());
        }
    }
    out.retain(|p| p.starts_with("crate::") || p.starts_with("super::") || p.starts_with("self::"));
    out.sort();
    out.dedup();
    out
}

/// The module a path leads into: the deepest prefix that is a module with
/// its own file.
fn resolve(from: &str, path: &str, known: &BTreeSet<Module>) -> Option<Module> {
    let mut segments: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").map(str::to_string).collect()
    };
    match segments.first() {
        Some(&"crate") => base.clear(),
        Some(&"self") => {}
        Some(&"super") => {
            while segments.first() == Some(&"super") {
                base.pop();
                segments.remove(0);
            }
            segments.insert(0, "super");
        }
        _ => return None,
    }
    segments.remove(0);
    let mut best = None;
    let mut current = base;
    if known.contains(&current.join("::")) {
        best = Some(current.join("::"));
    }
    for seg in segments {
        current.push(seg.to_string());
        let name = current.join("::");
        if known.contains(&name) {
            best = Some(name);
        } else {
            break;
        }
    }
    best
}

/// The graph: module → modules it uses.
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let mods = modules();
    let known: BTreeSet<Module> = mods.iter().cloned().collect();
    let mut g = BTreeMap::new();
    for m in &mods {
        let text = std::fs::read_to_string(file_of(m).unwrap()).unwrap();
        let deps: BTreeSet<Module> = paths(&code(&text))
            .iter()
            .filter_map(|p| resolve(m, p, &known))
            .filter(|d| d != m && !d.is_empty())
            .collect();
        g.insert(m.clone(), deps);
    }
    g
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        g: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The same graph with every module folded into its top-level module
/// (`inspect::stream` → `inspect`).
fn top_level(g: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeMap<Module, BTreeSet<Module>> {
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_string();
    let mut out: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, deps) in g {
        let entry = out.entry(top(m)).or_default();
        entry.extend(deps.iter().map(|d| top(d)).filter(|d| *d != top(m)));
    }
    out
}

fn assert_acyclic(what: &str, g: &BTreeMap<Module, BTreeSet<Module>>) {
    println!("== {what}");
    for (m, deps) in g {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("{m} → {}", deps.join(", "));
    }
    let found = cycles(g);
    assert!(
        found.is_empty(),
        "{what}: cycles (each group depends on itself through the others):\n{}",
        found
            .iter()
            .map(|c| format!("  {}", c.join(" ↔ ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn no_module_file_depends_on_itself_through_others() {
    assert_acyclic("modules", &graph());
}

#[test]
fn no_top_level_module_depends_on_itself_through_others() {
    assert_acyclic("top-level modules", &top_level(&graph()));
}

#[test]
fn the_reader_resolves_use_trees_and_inline_paths() {
    let code = code(
        "use crate::{a::B, c::{d, e::F as G}};\nuse super::x;\nfn f() { crate::h::i(); let s = \"crate::no\"; } // crate::no\n",
    );
    let mut p = paths(&code);
    p.sort();
    assert_eq!(
        p,
        [
            "crate::a::B",
            "crate::c::d",
            "crate::c::e::F",
            "crate::h::i",
            "super::x"
        ]
    );
    let known: BTreeSet<Module> = ["a", "c", "c::e", "q", "q::r"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        resolve("q::r", "crate::c::e::F", &known).as_deref(),
        Some("c::e")
    );
    assert_eq!(resolve("q::r", "super::x", &known).as_deref(), Some("q"));
    assert_eq!(resolve("q::r", "crate::zz", &known), None);
}
