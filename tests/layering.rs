//! The layering the README states, checked from the `crate::` paths in `src/`:
//! - the model (`events`) imports nothing of the rest of the crate;
//! - the pipeline (`pipeline`, `flush`) imports nothing of the edges (capture, admission,
//!   the sweep, the Segment client, the state ConfigMap, HTTP, the wiring);
//! - no module imports, directly or through others, a module that imports it back.
//!
//! A module is a file (`src/a/b.rs` is `a::b`, `src/a/mod.rs` is `a`); a reference is any
//! `crate::` path outside comments and outside the file's `#[cfg(test)] mod tests`,
//! resolved to the longest module it names. The checks run on the real tree and, to show
//! they can fail, on small trees with a reversed import and a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`a::b`) to the modules it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level modules at the edges: sources, outputs and the wiring.
const EDGES: &[&str] = &[
    "capture",
    "admission",
    "sweep",
    "segment",
    "state",
    "http",
    "daemon",
    "cli",
    "logging",
    "transform",
];

/// The model: imports nothing of the crate outside itself.
const MODEL: &[&str] = &["events"];

/// The pipeline: imports nothing of [`EDGES`].
const PIPELINE: &[&str] = &["pipeline", "flush"];

fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod.rs") {
        parts.pop();
    } else if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_owned();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts.join("::")
}

/// The source without comments and without the trailing unit-test module.
fn code(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(i) => &source[..i],
        None => source,
    };
    source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `crate::` path in `code`, with `use crate::{a, b::{c, d}}` groups spelled out.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before_ok = rest[..i].chars().next_back().is_none_or(|c| !is_ident(c));
        rest = &rest[i + "crate::".len()..];
        if !before_ok {
            continue;
        }
        expand("", rest, &mut out);
    }
    out
}

/// Appends the paths that `text` (just after `prefix::`) spells: one path, or a group.
fn expand(prefix: &str, text: &str, out: &mut Vec<String>) {
    let join = |p: &str, s: &str| {
        if p.is_empty() {
            s.to_owned()
        } else {
            format!("{p}::{s}")
        }
    };
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand_item(prefix, &group[start..i], out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_item(prefix, &group[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let mut path = String::new();
    let mut rest = text;
    loop {
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path = join(&path, &rest[..end]);
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with('{') => return expand(&join(prefix, &path), r, out),
            Some(r) => rest = r,
            None => break,
        }
    }
    if !path.is_empty() {
        out.push(join(prefix, &path));
    }
}

fn expand_item(prefix: &str, item: &str, out: &mut Vec<String>) {
    let item = item.trim();
    match item {
        "" => {}
        "self" => out.push(prefix.to_owned()),
        _ => expand(prefix, item, out),
    }
}

/// The module graph of `files` (module path, source).
fn graph(files: &[(String, String)]) -> Graph {
    let modules: BTreeSet<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
    let resolve = |path: &str| -> Option<String> {
        let segs: Vec<&str> = path.split("::").collect();
        (1..=segs.len())
            .rev()
            .map(|n| segs[..n].join("::"))
            .find(|m| modules.contains(m.as_str()))
    };
    let mut g = Graph::new();
    for (module, source) in files {
        let refs = g.entry(module.clone()).or_default();
        for path in crate_paths(&code(source)) {
            if let Some(target) = resolve(&path) {
                // A module's own children and ancestors (the crate root) are not imports.
                let own = target == *module || target.starts_with(&format!("{module}::"));
                let ancestor = module.starts_with(&format!("{target}::"));
                if !own && !ancestor && !target.is_empty() {
                    refs.insert(target);
                }
            }
        }
    }
    g
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The imports that break the layers: `(from, to, rule)`.
fn layer_violations(g: &Graph) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    for (from, targets) in g {
        for to in targets {
            if MODEL.contains(&top(from)) && top(to) != top(from) {
                out.push((from.clone(), to.clone(), "the model imports nothing else"));
            }
            if PIPELINE.contains(&top(from)) && EDGES.contains(&top(to)) {
                out.push((from.clone(), to.clone(), "the pipeline imports no edge"));
            }
        }
    }
    out
}

/// The groups of modules that import one another (strongly connected, more than one).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        g: &'g Graph,
        next: usize,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    group.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        next: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

fn source_tree() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(&root).expect("under src/");
                let text = std::fs::read_to_string(&path).expect("a source file");
                files.push((module_of(relative), text));
            }
        }
    }
    files
}

#[test]
fn the_source_tree_keeps_its_layers_and_has_no_import_cycle() {
    let files = source_tree();
    assert!(files.len() > 40, "src/ read: {} files", files.len());
    let g = graph(&files);
    // The reading itself works: known imports are seen.
    assert!(g["pipeline"].contains("pipeline::ledger") || g["pipeline"].contains("flush"));
    assert!(g["daemon"].contains("pipeline"), "{:?}", g["daemon"]);
    let violations = layer_violations(&g);
    assert!(
        violations.is_empty(),
        "imports against the layers: {violations:#?}"
    );
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "modules importing one another: {found:#?}"
    );
}

fn tree(files: &[(&str, &str)]) -> Graph {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(m, s)| ((*m).to_owned(), (*s).to_owned()))
        .collect();
    graph(&files)
}

#[test]
fn a_reversed_import_is_caught() {
    let g = tree(&[
        ("events", "use crate::pipeline::Core;\n"),
        ("pipeline", "use crate::events::Event;\n"),
    ]);
    let v = layer_violations(&g);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!((v[0].0.as_str(), v[0].1.as_str()), ("events", "pipeline"));

    let g = tree(&[
        (
            "pipeline::ledger",
            "fn f() { crate::capture::guarded_watch::run(); }\n",
        ),
        (
            "capture::guarded_watch",
            "use crate::{events::Event, pipeline::{self, ledger}};\n",
        ),
        ("capture", ""),
        ("pipeline", ""),
        ("events", ""),
    ]);
    let v = layer_violations(&g);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].1, "capture::guarded_watch");
}

#[test]
fn a_cycle_is_caught_and_comments_and_tests_are_not_imports() {
    let g = tree(&[
        ("admission", "use crate::pipeline::Core;\n"),
        (
            "pipeline",
            "use crate::metrics::{CoreMetrics, label_sets};\n",
        ),
        ("metrics", "use crate::admission::AdmissionMetrics;\n"),
    ]);
    assert_eq!(cycles(&g), vec![vec!["admission", "metrics", "pipeline"]]);

    let g = tree(&[
        (
            "a",
            "// see crate::b\nfn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::b::X;\n}\n",
        ),
        ("b", "use crate::a::Y;\n"),
    ]);
    assert!(cycles(&g).is_empty(), "{g:?}");
    assert!(g["a"].is_empty(), "{g:?}");
}
