//! The library's layers, checked from its source: every file of `client/` belongs to one layer
//! (its first folder), imports only from its own layer and the layers below it, and no files
//! import each other in a circle. `docs/architecture.md` says what each layer holds.
//!
//! Imports are read from the code (comments and the `#[cfg(test)] mod tests` at the end of a
//! file are left out): `crate::` paths (also inside `use crate::{…}` groups), `super::` and
//! `self::` paths, and paths that start with the name of one of the file's own child modules.
//! This test needs nothing but the standard library, so it also runs on its own:
//! `CARGO_MANIFEST_DIR=$PWD rustc --edition 2021 --test tests/architecture.rs -o /tmp/arch && /tmp/arch`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each layer, bottom up, with the layers below it that it may import from. `error.rs` (the
/// library's error type) sits under all of them.
const LAYERS: &[(&str, &[&str])] = &[
    ("format", &[]),
    ("text", &["format"]),
    ("nn", &["format", "text"]),
    ("task", &["format", "text"]),
    ("learn", &["format", "text", "nn", "task"]),
    ("app", &["format", "text", "nn", "task", "learn"]),
];

/// Files of `client/` outside the layers: the crate root, the error type every layer uses, the
/// unit tests' helpers, and the binary's own files (which import the library as `aginet::`).
const OUTSIDE: &[&str] = &["lib", "error", "test_util", "main", "under_boinc"];

/// Modules everyone may import.
const BASE: &[&str] = &["error"];

#[test]
fn every_layer_imports_only_from_below_and_no_files_import_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("client");
    let graph = import_graph(&root);
    let mut problems = layer_violations(&graph, &|m| file_of(&root, m));
    problems.extend(circles(&graph).into_iter().map(|c| {
        format!(
            "files that import each other in a circle: {}",
            c.iter()
                .map(|m| file_of(&root, m))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }));
    assert!(
        problems.is_empty(),
        "the library's layers (docs/architecture.md) are broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_server_tools_use_the_library_but_not_the_app() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("server/src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "{}: no sources", root.display());
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            let code = code_only(&std::fs::read_to_string(f).unwrap());
            code.contains("aginet::app") || code.contains("aginet::{app")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "server tools import the volunteer app's layer (aginet::app): {offenders:?}"
    );
}

#[test]
fn a_bad_import_and_a_circle_are_found() {
    let mut graph = Graph::new();
    graph.insert("format::config".into(), ["learn::eval".to_string()].into());
    graph.insert("learn::eval".into(), ["learn::train".to_string()].into());
    graph.insert("learn::train".into(), ["learn::eval".to_string()].into());
    let problems = layer_violations(&graph, &|m| format!("client/{}.rs", m.replace("::", "/")));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("client/format/config.rs"),
        "{problems:?}"
    );
    let found = circles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].len(), 2);
    // The reader finds imports in each of the forms the library uses.
    let modules: BTreeSet<String> = ["format", "format::config", "learn", "learn::eval", "nn"]
        .map(String::from)
        .into();
    let source = "use crate::{format::config::{A, B}, error::Result};\n\
                  // use crate::nn::x; a comment\n\
                  fn f() { eval::run(); super::super::nn::g(); }\n\
                  #[cfg(test)]\nmod tests { use crate::nn::y; }";
    let found = imports("learn", source, &modules);
    assert_eq!(
        found,
        ["format::config", "learn::eval", "nn"]
            .map(String::from)
            .into()
    );
}

/// Module path → the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The import graph of the library's files under `root`.
fn import_graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .into_iter()
        .map(|f| (module_of(root, &f), f))
        .filter(|(m, _)| !m.is_empty())
        .collect();
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .filter(|(m, _)| !OUTSIDE.contains(&m.as_str()))
        .map(|(m, f)| {
            let source =
                std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            (m.clone(), imports(m, &source, &names))
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `client/nn/model/mod.rs` → `nn::model`; `client/lib.rs` → `lib`.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The file a module lives in, for messages: `client/a/b.rs` or `client/a/b/mod.rs`.
fn file_of(root: &Path, module: &str) -> String {
    let path = module.replace("::", "/");
    if root.join(&path).join("mod.rs").exists() {
        format!("client/{path}/mod.rs")
    } else {
        format!("client/{path}.rs")
    }
}

/// The layer of a module: its first folder, or `None` outside the layers.
fn layer_of(module: &str) -> Option<&'static str> {
    let first = module.split("::").next().unwrap();
    LAYERS.iter().map(|(l, _)| *l).find(|l| *l == first)
}

/// The modules of `names` that the source of `module` imports, itself excluded.
fn imports(module: &str, source: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    let code = code_only(source);
    let here: Vec<&str> = module.split("::").collect();
    let mut found = BTreeSet::new();
    let mut add = |segments: Vec<String>| {
        // The longest prefix that is a module.
        for k in (1..=segments.len()).rev() {
            let candidate = segments[..k].join("::");
            if names.contains(&candidate) {
                if candidate != module {
                    found.insert(candidate);
                }
                return;
            }
        }
    };
    for (start, path) in paths(&code) {
        let mut segments: Vec<String> = path.split("::").map(String::from).collect();
        match segments[0].as_str() {
            "crate" => {
                segments.remove(0);
                if segments.first().is_some_and(|s| s.starts_with('{')) {
                    for item in group_items(&code[start..]) {
                        add(item.split("::").map(String::from).collect());
                    }
                    continue;
                }
            }
            "super" | "self" => {
                let mut base: Vec<String> = here.iter().map(|s| s.to_string()).collect();
                while segments
                    .first()
                    .is_some_and(|s| s == "super" || s == "self")
                {
                    if segments.remove(0) == "super" {
                        base.pop();
                    }
                }
                base.extend(segments);
                segments = base;
            }
            first => {
                // A path through one of this module's own children.
                let child = format!("{module}::{first}");
                if !names.contains(&child) {
                    continue;
                }
                let mut base: Vec<String> = here.iter().map(|s| s.to_string()).collect();
                base.extend(segments);
                segments = base;
            }
        }
        add(segments);
    }
    found
}

/// The source without comments and without the trailing `#[cfg(test)] mod tests`.
fn code_only(source: &str) -> String {
    let mut code = String::new();
    let mut previous_cfg_test = false;
    for line in source.lines() {
        let trimmed = line.trim();
        if previous_cfg_test && trimmed.starts_with("mod tests") {
            break;
        }
        previous_cfg_test = trimmed == "#[cfg(test)]";
        let without_comment = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        code.push_str(without_comment);
        code.push('\n');
    }
    code
}

/// Every `a::b::c` path in `code` (identifiers joined by `::`, possibly ending in `::{`), with
/// its byte offset.
fn paths(code: &str) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            let start = i;
            let mut end = i;
            let mut segments = 0;
            loop {
                while end < bytes.len() && ident(bytes[end]) {
                    end += 1;
                }
                segments += 1;
                if code[end..].starts_with("::") {
                    if code[end + 2..].starts_with('{') {
                        end += 3;
                        break;
                    }
                    end += 2;
                } else {
                    break;
                }
            }
            if segments > 1 || code[start..end].ends_with('{') {
                out.push((start, code[start..end].to_string()));
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// The paths of a `crate::{a::b, c::{d, e}}` group starting at `text`, as `a::b`, `c::d`, `c::e`.
fn group_items(text: &str) -> Vec<String> {
    let open = text.find('{').unwrap();
    let mut depth = 0;
    let mut end = open;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = open + i;
                    break;
                }
            }
            _ => {}
        }
    }
    expand("", &text[open + 1..end])
}

/// Items of a `use` group body, each prefixed with `prefix`.
fn expand(prefix: &str, body: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    let mut parts = Vec::new();
    for c in body.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    for part in parts {
        let part: String = part.split_whitespace().collect();
        if part.is_empty() {
            continue;
        }
        match part.find("::{") {
            Some(i) => {
                let inner = &part[i + 3..part.len() - 1];
                items.extend(expand(&format!("{prefix}{}::", &part[..i]), inner));
            }
            None => items.push(format!("{prefix}{}", part.split(" as ").next().unwrap())),
        }
    }
    items
}

/// An import from a layer the importer may not use, or a file outside every layer.
fn layer_violations(graph: &Graph, file_of: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut problems = Vec::new();
    for (module, deps) in graph {
        let Some(layer) = layer_of(module) else {
            if !BASE.contains(&module.as_str()) {
                problems.push(format!(
                    "{} belongs to no layer: move it into one of {:?}",
                    file_of(module),
                    LAYERS.iter().map(|(l, _)| *l).collect::<Vec<_>>()
                ));
            }
            continue;
        };
        let allowed = LAYERS.iter().find(|(l, _)| *l == layer).unwrap().1;
        for dep in deps {
            if BASE.contains(&dep.as_str()) {
                continue;
            }
            match layer_of(dep) {
                Some(l) if l == layer || allowed.contains(&l) => {}
                other => problems.push(format!(
                    "{} ({layer}) imports {dep} ({}): {layer} may import only from {}",
                    file_of(module),
                    other.unwrap_or("no layer"),
                    [&[layer][..], allowed].concat().join(", ")
                )),
            }
        }
    }
    problems
}

/// The import circles: each strongly connected set of two or more files (Tarjan's algorithm).
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.graph.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}
