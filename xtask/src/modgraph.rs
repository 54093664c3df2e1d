//! The import graph between the modules of one crate, read from its sources' `use
//! crate::…`, `super::…` and `self::…` paths (tests left out), for the tidy rules on
//! layers: no import circle, and job modules that do not import each other.
//!
//! A text reader, not a compiler: a module is a file (`a.rs` or `a/mod.rs` is `a`,
//! `a/b.rs` is `a::b`), a path is followed through modules and through the `pub use`
//! re-exports on the way, and the item's module is the edge's end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One crate's modules: their library text (no comments, no `#[cfg(test)]` modules).
pub(crate) struct Crate {
    modules: BTreeMap<String, String>,
}

/// A module's path from the file's path under `src/`.
fn module_path(relative: &Path) -> String {
    let mut parts: Vec<String> =
        relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts.join("::")
}

/// The library part of a source: comments dropped, an inline `#[cfg(test)]` module (and
/// everything after it) cut; with the names of the modules it declares for tests only
/// (`#[cfg(test)] mod fake;`), which are no part of the library.
fn library_text(text: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_modules = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let next = lines.peek().map(|l| l.trim()).unwrap_or_default();
            let declared = next.trim_start_matches("pub(crate) ").trim_start_matches("pub(super) ");
            if let Some(name) = declared.strip_prefix("mod ").and_then(|d| d.strip_suffix(';')) {
                test_modules.push(name.trim().to_owned());
                lines.next();
                continue;
            }
            if declared.starts_with("mod ") {
                break;
            }
            continue;
        }
        out.push_str(line.split("//").next().unwrap_or(""));
        out.push('\n');
    }
    (out, test_modules)
}

/// Parses a use tree (`a::b::{c, d::e as f, g::*}`) into its leaf paths; `self` in a
/// group means the group's prefix.
fn use_tree(text: &str) -> Vec<Vec<String>> {
    fn tree(chars: &[char], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        loop {
            while *at < chars.len() && chars[*at].is_whitespace() {
                *at += 1;
            }
            if *at < chars.len() && chars[*at] == '{' {
                *at += 1;
                loop {
                    tree(chars, at, &path, out);
                    while *at < chars.len() && chars[*at].is_whitespace() {
                        *at += 1;
                    }
                    match chars.get(*at) {
                        Some(',') => {
                            *at += 1;
                            while *at < chars.len() && chars[*at].is_whitespace() {
                                *at += 1;
                            }
                            if chars.get(*at) == Some(&'}') {
                                *at += 1;
                                return;
                            }
                        }
                        Some('}') => {
                            *at += 1;
                            return;
                        }
                        _ => return,
                    }
                }
            }
            let start = *at;
            while *at < chars.len()
                && (chars[*at].is_alphanumeric() || chars[*at] == '_' || chars[*at] == '*')
            {
                *at += 1;
            }
            let segment: String = chars[start..*at].iter().collect();
            if segment.is_empty() {
                if path.len() > prefix.len() || !path.is_empty() {
                    out.push(path);
                }
                return;
            }
            if segment != "self" {
                path.push(segment);
            }
            if chars.get(*at) == Some(&':') && chars.get(*at + 1) == Some(&':') {
                *at += 2;
                continue;
            }
            // An alias (`as x`) or the end of the path.
            out.push(path);
            let rest: String = chars[*at..].iter().take(4).collect();
            if rest.trim_start().starts_with("as ") {
                while *at < chars.len() && chars[*at].is_whitespace() {
                    *at += 1;
                }
                *at += 2;
                while *at < chars.len() && chars[*at].is_whitespace() {
                    *at += 1;
                }
                while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '_') {
                    *at += 1;
                }
            }
            return;
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    tree(&chars, &mut 0, &[], &mut out);
    out
}

/// Every path a module's text names from a module of its crate, resolved to an absolute
/// path of segments (the crate root is the empty path).
fn named_paths(module: &str, text: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let here: Vec<String> =
        if module.is_empty() { Vec::new() } else { module.split("::").map(str::to_owned).collect() };
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        out.extend(use_tree(&text[at + 7..]));
    }
    for (at, _) in text.match_indices("super::") {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let parent = &here[..here.len().saturating_sub(1)];
        out.extend(use_tree(&text[at + 7..]).into_iter().map(|p| [parent, &p[..]].concat()));
    }
    // `use child::…` and `use self::…` from inside a module.
    for (at, _) in text.match_indices("use ") {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = text[at + 4..].trim_start();
        let rest = rest.strip_prefix("self::").unwrap_or(rest);
        let first: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let child = if module.is_empty() { first.clone() } else { format!("{module}::{first}") };
        if children.contains(&child) {
            out.extend(use_tree(rest).into_iter().map(|p| [&here[..], &p[..]].concat()));
        }
    }
    out
}

impl Crate {
    /// Reads every `.rs` file under `src`.
    pub(crate) fn read(src: &Path) -> Crate {
        let mut files = Vec::new();
        crate::tidy::rust_files(src, &mut files);
        let mut modules = BTreeMap::new();
        let mut tests_only = Vec::new();
        for f in &files {
            let module = module_path(f.strip_prefix(src).unwrap_or(f));
            let (text, test_modules) = library_text(&std::fs::read_to_string(f).unwrap_or_default());
            let prefix = if module.is_empty() { String::new() } else { format!("{module}::") };
            tests_only.extend(test_modules.into_iter().map(|m| format!("{prefix}{m}")));
            modules.insert(module, text);
        }
        modules.retain(|m, _| !tests_only.iter().any(|t| m == t || m.starts_with(&format!("{t}::"))));
        Crate { modules }
    }

    /// The modules' names.
    fn names(&self) -> BTreeSet<String> {
        self.modules.keys().cloned().collect()
    }

    /// What a module re-exports: a name to the absolute path it stands for.
    fn re_exports(&self, module: &str) -> BTreeMap<String, Vec<String>> {
        let text = &self.modules[module];
        let mut out = BTreeMap::new();
        for prefix in ["pub use ", "pub(crate) use "] {
            for (at, _) in text.match_indices(prefix) {
                let statement = &text[at..];
                let statement = &statement[prefix.len()..statement.find(';').unwrap_or(statement.len())];
                let names = self.names();
                let paths = named_paths(module, &format!("use {statement}"), &names);
                let paths: Vec<Vec<String>> = if statement.trim_start().starts_with("crate::") {
                    use_tree(&statement.trim_start()[7..])
                } else {
                    paths
                };
                for path in paths {
                    if let Some(last) = path.last() {
                        out.insert(last.clone(), path.clone());
                    }
                }
            }
        }
        out
    }

    /// The module that defines the item an absolute path names.
    fn resolve(&self, path: &[String], depth: usize) -> String {
        let mut module = String::new();
        for (i, segment) in path.iter().enumerate() {
            let child = if module.is_empty() { segment.clone() } else { format!("{module}::{segment}") };
            if self.modules.contains_key(&child) {
                module = child;
                continue;
            }
            if depth < 8 {
                if let Some(target) = self.re_exports(&module).get(segment) {
                    if target.as_slice() != &path[..=i] {
                        return self.resolve(target, depth + 1);
                    }
                }
            }
            break;
        }
        module
    }

    /// Each module's imports of other modules of the crate (not itself, not the root).
    pub(crate) fn edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let names = self.names();
        let mut out = BTreeMap::new();
        for (module, text) in &self.modules {
            let mut deps = BTreeSet::new();
            for path in named_paths(module, text, &names) {
                let target = self.resolve(&path, 0);
                // A module's own children and itself are not imports; the root only wires.
                if target != *module && !target.is_empty() && !target.starts_with(&format!("{module}::")) {
                    deps.insert(target);
                }
            }
            out.insert(module.clone(), deps);
        }
        out
    }
}

/// The import circles of a graph: each strongly connected set of more than one module.
pub(crate) fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for next in edges.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = edges.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in edges.keys() {
        if done.contains(m) || !reaches[m].contains(m) {
            continue;
        }
        let circle: Vec<String> =
            edges.keys().filter(|o| reaches[m].contains(*o) && reaches[*o].contains(m)).cloned().collect();
        done.extend(circle.iter().cloned());
        out.push(circle);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn use_trees_expand_to_their_leaves() {
        assert_eq!(
            use_tree("a::{b, c::{d as e, self}, f::*};"),
            vec![
                vec!["a".to_owned(), "b".to_owned()],
                vec!["a".to_owned(), "c".to_owned(), "d".to_owned()],
                vec!["a".to_owned(), "c".to_owned()],
                vec!["a".to_owned(), "f".to_owned(), "*".to_owned()],
            ]
        );
        assert_eq!(
            use_tree("job::Job::new(x)"),
            vec![vec!["job".to_owned(), "Job".to_owned(), "new".to_owned()]]
        );
    }

    #[test]
    fn a_path_resolves_through_modules_and_re_exports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path();
        std::fs::create_dir_all(src.join("steps")).expect("mkdir");
        std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod steps;\npub use crate::a::A;\n")
            .expect("write");
        std::fs::write(src.join("a.rs"), "//! a\nuse crate::steps::Scale;\npub struct A;\n").expect("write");
        std::fs::write(src.join("b.rs"), "//! b\nuse crate::{A, steps::lookup::find};\n// crate::c\n")
            .expect("write");
        std::fs::write(src.join("steps/mod.rs"), "mod lookup;\nmod scale;\npub use scale::Scale;\n")
            .expect("write");
        std::fs::write(src.join("steps/lookup.rs"), "use super::scale::Scale;\npub fn find() {}\n")
            .expect("write");
        std::fs::write(
            src.join("steps/scale.rs"),
            "#[cfg(test)]\nmod fake;\npub struct Scale;\n#[cfg(test)]\nmod tests {\n use crate::b::x;\n}\n",
        )
        .expect("write");
        std::fs::create_dir_all(src.join("steps/scale")).expect("mkdir");
        std::fs::write(src.join("steps/scale/fake.rs"), "use crate::b::y;\n").expect("write");
        let edges = Crate::read(src).edges();
        assert_eq!(edges["a"], set(&["steps::scale"]));
        assert_eq!(edges["b"], set(&["a", "steps::lookup"]));
        assert_eq!(edges["steps::lookup"], set(&["steps::scale"]));
        assert_eq!(edges["steps::scale"], set(&[]), "a test module's imports are not the library's");
        assert!(
            !edges.contains_key("steps::scale::fake"),
            "a module declared for tests is no part of the library"
        );
        assert!(circles(&edges).is_empty());
        let mut looped = edges.clone();
        looped.get_mut("steps::scale").expect("scale").insert("b".to_owned());
        assert_eq!(
            circles(&looped),
            vec![vec!["a".to_owned(), "b".to_owned(), "steps::lookup".to_owned(), "steps::scale".to_owned()]]
        );
    }
}
