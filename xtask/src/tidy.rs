//! Repository rules checked under `cargo test`: every Rust file opens with its own `//!`
//! documentation.

use std::path::{Path, PathBuf};

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_has_module_docs() {
    let root = crate::project_root();
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {} Rust files under {}", files.len(), root.display());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(missing.is_empty(), "these files do not start with `//!` docs: {missing:#?}");
}

/// The policy crate's source, file by file.
fn policy_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&crate::project_root().join("crates/policy/src"), &mut files);
    files.into_iter().map(|f| (f.clone(), std::fs::read_to_string(&f).unwrap_or_default())).collect()
}

/// Architecture invariant: dockhand-policy does no I/O (no filesystem, network, environment,
/// processes or async runtime), so every rule can be tested exhaustively and fuzzed.
#[test]
fn the_policy_crate_does_no_io() {
    let sources = policy_sources();
    assert!(sources.len() >= 5, "policy sources not found");
    for (file, text) in &sources {
        // Tests inside the crate may build fixtures; the library may not touch the world.
        // Comments (which say what the crate does not do) are not code.
        let library: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for banned in ["std::fs", "std::net", "std::env", "std::process", "tokio", "File::", "TcpStream"] {
            assert!(
                !library.contains(banned),
                "{} uses {banned}: dockhand-policy does no I/O",
                file.display()
            );
        }
    }
    let manifest =
        std::fs::read_to_string(crate::project_root().join("crates/policy/Cargo.toml")).unwrap_or_default();
    let deps = manifest.split("[dev-dependencies]").next().unwrap_or("");
    assert!(
        !deps.contains("tokio") && !deps.contains("hyper"),
        "dockhand-policy must not depend on an I/O stack"
    );
}

/// Tokens are compared with `subtle`'s constant-time primitive, never with `==`.
#[test]
fn tokens_are_compared_in_constant_time() {
    let auth =
        std::fs::read_to_string(crate::project_root().join("crates/policy/src/auth.rs")).unwrap_or_default();
    let library = auth.split("#[cfg(test)]").next().unwrap_or("");
    assert!(
        library.contains("use subtle::ConstantTimeEq") && library.contains(".ct_eq("),
        "auth.rs must use subtle"
    );
    for line in library.lines().filter(|l| l.contains("token") || l.contains("label")) {
        let code = line.split("//").next().unwrap_or("");
        assert!(
            !code.contains(" == token") && !code.contains("token == ") && !code.contains("label == "),
            "a plain comparison: {line}"
        );
    }
}

/// The rows of the markdown table between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in
/// `docs/architecture.md`, each a list of its cells, the header and rule rows left out.
fn doc_table(name: &str) -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(crate::project_root().join("docs/architecture.md")).unwrap_or_default();
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let body = doc.split(&begin).nth(1).and_then(|rest| rest.split(&end).next()).unwrap_or("");
    body.lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .skip(2)
        .map(|l| l.trim().trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

/// A comma-separated cell, as a list.
fn cell_list(cell: &str) -> Vec<String> {
    cell.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A floor-plan row: a crate and the workspace crates it may depend on.
type Edge = (String, Vec<String>);
/// A stack row: a crate, the features that make it the stack (none: any use), its owners.
type Stack = (String, Vec<String>, Vec<String>);

/// A dependency as the rules see it.
#[derive(Debug, Clone)]
struct Dep {
    name: String,
    /// `normal`, `dev` or `build`.
    kind: String,
    features: Vec<String>,
}

/// Every workspace package's declared dependencies, from `cargo metadata --no-deps` JSON.
fn declared(metadata: &serde_json::Value) -> Vec<(String, Vec<Dep>)> {
    let mut out = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let deps = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| Dep {
                name: d["name"].as_str().unwrap_or_default().to_owned(),
                kind: d["kind"].as_str().unwrap_or("normal").to_owned(),
                features: d["features"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect(),
            })
            .collect();
        out.push((package["name"].as_str().unwrap_or_default().to_owned(), deps));
    }
    out
}

/// Every way `packages` breaks the floor plan (`edges`: crate, the workspace crates it may
/// depend on) and the stack rules (`stacks`: a crate with optional features, and the crates
/// it may appear in).
fn floor_plan_violations(packages: &[(String, Vec<Dep>)], edges: &[Edge], stacks: &[Stack]) -> Vec<String> {
    let workspace: Vec<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
    let mut problems = Vec::new();
    for (package, deps) in packages {
        let Some((_, allowed)) = edges.iter().find(|(n, _)| n == package) else {
            problems.push(format!("{package} has no row in the floor plan of docs/architecture.md"));
            continue;
        };
        for dep in deps {
            let in_workspace = workspace.contains(&dep.name.as_str());
            let dev_harness = dep.kind == "dev" && dep.name == "dockhand-e2e";
            if in_workspace && !allowed.contains(&dep.name) && !dev_harness {
                problems.push(format!("{package} -> {} ({}) is not in the floor plan", dep.name, dep.kind));
            }
            if dep.kind == "dev" || package == "xtask" {
                continue;
            }
            for (stack, features, owners) in stacks {
                let hit = dep.name == *stack
                    && (features.is_empty() || dep.features.iter().any(|f| features.contains(f)));
                if hit && !owners.contains(package) {
                    problems.push(format!(
                        "{package} depends on {stack}{}, which only {} may use",
                        if features.is_empty() { String::new() } else { format!(" with {features:?}") },
                        owners.join(", ")
                    ));
                }
            }
        }
    }
    problems
}

/// The floor plan as `docs/architecture.md` writes it.
fn documented_rules() -> (Vec<Edge>, Vec<Stack>) {
    let edges: Vec<_> = doc_table("floor-plan")
        .into_iter()
        .map(|row| (row[0].clone(), cell_list(row.get(1).map_or("", String::as_str))))
        .collect();
    let stacks: Vec<_> = doc_table("stacks")
        .into_iter()
        .map(|row| {
            let (name, features) = match row[0].split_once('(') {
                Some((name, rest)) => (name.trim().to_owned(), cell_list(rest.trim_end_matches(')'))),
                None => (row[0].clone(), Vec::new()),
            };
            (name, features, cell_list(row.get(1).map_or("", String::as_str)))
        })
        .collect();
    (edges, stacks)
}

/// Architecture invariant: the dependency graph between workspace crates, and the stacks
/// that belong to one crate, are exactly what `docs/architecture.md` allows.
#[test]
fn the_floor_plan_holds() {
    let (edges, stacks) = documented_rules();
    assert!(edges.len() >= 8 && stacks.len() >= 8, "the tables in docs/architecture.md were not found");
    let out = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(crate::project_root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = declared(&metadata);
    assert!(packages.len() >= 8, "found only {} workspace packages", packages.len());
    let problems = floor_plan_violations(&packages, &edges, &stacks);
    assert!(problems.is_empty(), "the floor plan is broken:\n{}", problems.join("\n"));
}

/// The checker itself catches what it is for, on a made-up workspace.
#[test]
fn the_floor_plan_check_catches_forbidden_edges_and_stacks() {
    let (edges, stacks) = documented_rules();
    let dep = |name: &str, kind: &str, features: &[&str]| Dep {
        name: name.to_owned(),
        kind: kind.to_owned(),
        features: features.iter().map(|f| (*f).to_owned()).collect(),
    };
    let mut packages: Vec<(String, Vec<Dep>)> =
        edges.iter().map(|(name, _)| (name.clone(), Vec::new())).collect();
    let set = |packages: &mut Vec<(String, Vec<Dep>)>, name: &str, deps: Vec<Dep>| {
        packages.iter_mut().find(|(n, _)| n == name).expect("row").1 = deps;
    };
    set(
        &mut packages,
        "dockhand-cli",
        vec![dep("dockhand-e2e", "dev", &[]), dep("dockhand-host", "normal", &[])],
    );
    assert_eq!(floor_plan_violations(&packages, &edges, &stacks), Vec::<String>::new());

    set(&mut packages, "dockhand-jobs", vec![dep("dockhand-e2e", "normal", &[])]);
    set(&mut packages, "dockhand-host", vec![dep("rusqlite", "normal", &[])]);
    set(
        &mut packages,
        "dockhand-cli",
        vec![dep("hyper", "normal", &["client", "http1"]), dep("axum", "normal", &[])],
    );
    set(&mut packages, "dockhand-policy", vec![dep("hyper", "dev", &["server"])]);
    let problems = floor_plan_violations(&packages, &edges, &stacks);
    let expected = [
        "dockhand-jobs -> dockhand-e2e",
        "dockhand-host depends on rusqlite",
        "dockhand-cli depends on hyper with [\"client\"]",
        "dockhand-cli depends on axum",
    ];
    for e in expected {
        assert!(problems.iter().any(|p| p.starts_with(e)), "{e} not caught: {problems:#?}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

/// Each item has one home: no workspace crate re-exports another one or its items.
#[test]
fn no_crate_re_exports_another() {
    let mut files = Vec::new();
    rust_files(&crate::project_root().join("crates"), &mut files);
    assert!(files.len() > 10, "crate sources not found");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("").trim();
            assert!(
                !(code.starts_with("pub use dockhand_") || code.starts_with("pub use ::dockhand_")),
                "{} re-exports another crate: {line}",
                file.display()
            );
        }
    }
}

/// The CLI has no import circle: command modules take what they share from `args`,
/// `context` and `output`, never from each other, and `output` imports no command module.
#[test]
fn cli_modules_import_only_args_context_and_output() {
    let dir = crate::project_root().join("crates/cli/src");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() >= 6, "CLI sources not found");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let module: String =
                    code[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let shared = ["args", "context", "output"].contains(&module.as_str());
                let allowed = shared && !(name == "output" && module == "context");
                assert!(allowed || name == "main", "{}:{}: imports crate::{module}", file.display(), i + 1);
            }
        }
    }
}

/// The public signatures of `crates/*/src`: each `pub fn` / `pub async fn` (not
/// `pub(crate)`) from its keyword to its body, with where it is.
fn public_signatures() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&crate::project_root().join("crates"), &mut files);
    let mut out = Vec::new();
    for file in files.iter().filter(|f| f.components().any(|c| c.as_os_str() == "src")) {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (at, _) in text.match_indices("pub ") {
            let rest = &text[at..];
            if !(rest.starts_with("pub fn ")
                || rest.starts_with("pub async fn ")
                || rest.starts_with("pub const fn "))
            {
                continue;
            }
            let end = rest.find(['{', ';']).unwrap_or(rest.len());
            let line = text[..at].lines().count() + 1;
            out.push((
                format!("{}:{line}", file.display()),
                rest[..end].split_whitespace().collect::<Vec<_>>().join(" "),
            ));
        }
    }
    out
}

/// No public function answers a `String` error: an embedder matches on a type, and a
/// message alone says nothing a program can act on.
#[test]
fn no_public_function_returns_a_string_error() {
    let signatures = public_signatures();
    assert!(signatures.len() > 100, "public functions not found: {}", signatures.len());
    let stringly: Vec<&(String, String)> = signatures
        .iter()
        .filter(|(_, sig)| {
            sig.split("->")
                .nth(1)
                .is_some_and(|ret| ret.contains("Result<") && ret.replace(' ', "").ends_with(",String>"))
        })
        .collect();
    assert!(stringly.is_empty(), "public functions with a String error: {stringly:#?}");
}

/// A crate's import graph, read from its sources.
fn module_graph(krate: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    crate::modgraph::Crate::read(&crate::project_root().join("crates").join(krate).join("src")).edges()
}

/// No two modules of a crate import each other, directly or through others: a module's
/// imports are a tree one can read from the bottom up.
#[test]
fn no_module_import_circle() {
    // The engine's calls are `impl Client` blocks by area (swarm, containers, system) over
    // the one `Client` of `client.rs`, which pings through `system`: that knot is its shape.
    for krate in ["jobs", "server", "cli", "policy", "host"] {
        let edges = module_graph(krate);
        assert!(edges.len() >= 5, "crates/{krate}/src: modules not found");
        let circles = crate::modgraph::circles(&edges);
        assert!(circles.is_empty(), "crates/{krate}: modules that import each other: {circles:?}");
    }
}

/// The floors of `dockhand-jobs` as `docs/architecture.md` lists them: each module's floor,
/// and whether a floor's modules may import each other.
fn jobs_floors() -> (std::collections::BTreeMap<String, usize>, Vec<bool>) {
    let mut floors = std::collections::BTreeMap::new();
    let mut same = Vec::new();
    for (at, row) in doc_table("jobs-floors").into_iter().rev().enumerate() {
        for module in cell_list(&row[1]) {
            floors.insert(module.trim_matches('`').to_owned(), at);
        }
        same.push(row.get(2).is_some_and(|c| c.starts_with("yes")));
    }
    (floors, same)
}

/// The floor a module is on: its own row, or its parent's (`steps::lookup` is on `steps`'s).
fn floor_of(floors: &std::collections::BTreeMap<String, usize>, module: &str) -> Option<usize> {
    let mut name = module;
    loop {
        if let Some(floor) = floors.get(name) {
            return Some(*floor);
        }
        name = name.rsplit_once("::")?.0;
    }
}

/// Architecture invariant: every module of `dockhand-jobs` is on a floor of
/// `docs/architecture.md`, imports only from its floor (where the floor allows it) and the
/// floors below, and no job module imports another.
#[test]
fn jobs_modules_keep_to_their_floors() {
    let (floors, same) = jobs_floors();
    assert!(
        floors.len() >= 20 && same.len() >= 4,
        "the jobs-floors table was not found in docs/architecture.md"
    );
    let edges = module_graph("jobs");
    let mut problems = Vec::new();
    for (module, imports) in edges.iter().filter(|(m, _)| !m.is_empty()) {
        let Some(floor) = floor_of(&floors, module) else {
            problems.push(format!("{module} is on no floor of docs/architecture.md (jobs-floors)"));
            continue;
        };
        for import in imports {
            let there = floor_of(&floors, import).unwrap_or(usize::MAX);
            if there > floor
                || (there == floor && !same[floor] && !module.starts_with(&format!("{import}::")))
            {
                problems.push(format!("{module} (floor {floor}) imports {import} (floor {there})"));
            }
        }
    }
    for module in floors.keys() {
        if !edges.contains_key(module) {
            problems.push(format!("docs/architecture.md lists {module}, which is not a module"));
        }
    }
    assert!(problems.is_empty(), "the jobs wing's floors are broken:\n{}", problems.join("\n"));
}

/// Architecture invariant: `/proc` is read in one place, `dockhand-host`'s `procfs.rs`,
/// so that what dockhand learns from the kernel has one reader to review and to fake.
#[test]
fn proc_is_read_only_in_procfs() {
    // Tests may look at /proc to check what the library did.
    let readers = library_lines_with("\"/proc", |file| file.ends_with("crates/host/src/procfs.rs"));
    assert!(readers.is_empty(), "/proc read outside crates/host/src/procfs.rs:\n{}", readers.join("\n"));
}

/// Only a binary chooses the process's TLS crypto provider: no library source installs one
/// (`install_default`), so a program that embeds the crates keeps its own choice.
#[test]
fn only_binaries_install_a_crypto_provider() {
    let installers = library_lines_with("install_default();", |file| file.ends_with("main.rs"));
    assert!(installers.is_empty(), "a library installs the crypto provider:\n{}", installers.join("\n"));
    let binaries = ["crates/cli/src/main.rs", "crates/server/src/main.rs"]
        .iter()
        .filter(|f| {
            std::fs::read_to_string(crate::project_root().join(f))
                .unwrap_or_default()
                .contains("install_default();")
        })
        .count();
    assert_eq!(binaries, 2, "dockhand and dockhand-server each install ring's provider in main");
}

/// The lines of the crates' library code (not tests, not comments, not the files `skip`
/// names) that contain `needle`, as `file:line: text`.
fn library_lines_with(needle: &str, skip: impl Fn(&std::path::Path) -> bool) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&crate::project_root().join("crates"), &mut files);
    let sources: Vec<_> = files.iter().filter(|f| f.components().any(|c| c.as_os_str() == "src")).collect();
    assert!(sources.len() > 50, "crate sources not found");
    let mut found = Vec::new();
    for file in sources.into_iter().filter(|f| !f.ends_with("tests.rs") && !skip(f)) {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let library = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        for (i, line) in library.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(needle) {
                found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

/// The code map is whole: every module of a crate is named in that crate's section of
/// `docs/architecture.md`, by its file (`name.rs`), its path, or its folder (`dir/`).
#[test]
fn every_module_has_a_code_map_row() {
    let doc = std::fs::read_to_string(crate::project_root().join("docs/architecture.md")).unwrap_or_default();
    let mut missing = Vec::new();
    for krate in ["engine", "host", "policy", "jobs", "cli", "server"] {
        let section = doc
            .split("\n### ")
            .find(|s| s.starts_with(&format!("`crates/{krate}`")))
            .unwrap_or_else(|| panic!("docs/architecture.md has no section for crates/{krate}"));
        let src = crate::project_root().join("crates").join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let relative = file.strip_prefix(&src).unwrap_or(&file);
            let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if matches!(name, "lib.rs" | "main.rs" | "mod.rs" | "tests.rs") {
                continue;
            }
            let stem = name.trim_end_matches(".rs");
            let parent = relative.parent().and_then(|p| p.to_str()).unwrap_or_default();
            let named = [
                format!("`{}`", relative.display()),
                format!("`{name}`"),
                format!("`{stem}`"),
                format!("`{stem}/`"),
            ]
            .into_iter()
            .chain((!parent.is_empty()).then(|| format!("`{parent}/`")))
            .any(|form| section.contains(&form));
            if !named {
                missing.push(format!("crates/{krate}/src/{}", relative.display()));
            }
        }
    }
    assert!(missing.is_empty(), "modules without a row in docs/architecture.md's code map: {missing:#?}");
}

/// A file is read whole: none under `crates/*/src` is over 700 lines. A module that grows
/// past it splits along its seams (a folder with a file per concern, its tests in
/// `tests.rs`), as `steps/transfer/` and `storage/` did.
#[test]
fn no_source_file_is_over_700_lines() {
    let mut files = Vec::new();
    rust_files(&crate::project_root().join("crates"), &mut files);
    let sources: Vec<_> = files.iter().filter(|f| f.components().any(|c| c.as_os_str() == "src")).collect();
    assert!(sources.len() > 50, "crate sources not found");
    let long: Vec<String> = sources
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap_or_default().lines().count();
            (lines > 700).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 700 lines: {long:#?}");
}

/// The stacks behind a crate stay behind it: no public function takes or returns a
/// figment, reqwest or object_store type (an embedder would depend on their versions).
#[test]
fn no_public_signature_names_a_stack_type() {
    let signatures = public_signatures();
    assert!(signatures.len() > 100, "public functions not found: {}", signatures.len());
    let stack = ["figment::", "reqwest::", "object_store::", "ObjectStore", "ObjectMeta", "&Key", "-> Key"];
    let leaking: Vec<&(String, String)> =
        signatures.iter().filter(|(_, sig)| stack.iter().any(|s| sig.contains(s))).collect();
    assert!(leaking.is_empty(), "public functions with a stack's type: {leaking:#?}");
}
