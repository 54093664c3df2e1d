//! Repository rules checked under `cargo test`: every Rust file opens with its own `//!`
//! documentation.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
