//! Keeps README.md and `.ci/run` honest with each other: the test command
//! the README gives is the one CI runs, and the CI script is a strict,
//! executable bash script that also checks formatting and lints. And the
//! README's library example is the crate docs' one, which rustdoc compiles.

use std::path::PathBuf;

fn repo_file(rel: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// The body of the first ```sh block after the "## Testing" heading.
fn readme_test_command(readme: &str) -> String {
    let testing = readme
        .split("\n## Testing")
        .nth(1)
        .expect("README.md has a '## Testing' section");
    let block = testing
        .split("```sh\n")
        .nth(1)
        .expect("the Testing section has a ```sh block");
    block.split("```").next().unwrap().trim().to_string()
}

#[test]
fn readme_and_ci_run_the_same_test_command() {
    let (_, readme) = repo_file("README.md");
    let command = readme_test_command(&readme);
    assert_eq!(command, "scripts/test-all");
    let (_, ci) = repo_file(".ci/run");
    let commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("echo"))
        .collect();
    assert_eq!(commands.last(), Some(&command.as_str()), "{commands:?}");
    for required in [
        "set -euo pipefail",
        "cargo fmt --all -- --check",
        "cargo clippy --workspace --all-targets -- -D warnings",
    ] {
        assert!(
            commands.contains(&required),
            "{required} missing: {commands:?}"
        );
    }
}

#[cfg(unix)]
#[test]
fn ci_run_is_an_executable_bash_script() {
    use std::os::unix::fs::PermissionsExt;
    let (path, text) = repo_file(".ci/run");
    assert!(
        text.starts_with("#!/usr/bin/env bash\n") || text.starts_with("#!/bin/bash\n"),
        "{}",
        text.lines().next().unwrap_or("")
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert!(
        mode & 0o111 != 0,
        "{} is not executable ({mode:o})",
        path.display()
    );
}

/// The body of the first ```rust,no_run block after `heading` in `text`.
fn rust_block_after(text: &str, heading: &str) -> Option<String> {
    let after = text.split(heading).nth(1)?;
    let block = after.split("```rust,no_run\n").nth(1)?;
    Some(block.split("```").next()?.to_string())
}

#[test]
fn the_readme_library_example_is_the_doctest_of_the_crate_docs() {
    let (_, readme) = repo_file("README.md");
    let in_readme = rust_block_after(&readme, "\n## Library example")
        .expect("README.md has a ```rust,no_run block under '## Library example'");
    // The crate docs: lib.rs's `//!` lines without their prefix.
    let (_, lib) = repo_file("crates/batchata/src/lib.rs");
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
        .collect();
    let in_docs = rust_block_after(&docs, "\n## Example")
        .expect("the crate docs have a ```rust,no_run block under '## Example'");
    assert_eq!(
        in_readme, in_docs,
        "README.md's library example and the one in crates/batchata/src/lib.rs differ"
    );
    // The Cargo.toml lines it needs are stated above it.
    let section = readme.split("\n## Library example").nth(1).unwrap();
    let before_code = section.split("```rust,no_run").next().unwrap();
    for dep in ["batchata = ", "serde = ", "schemars = "] {
        assert!(
            before_code.contains(dep),
            "README's example does not state {dep}"
        );
    }
}

#[test]
fn every_crate_inherits_the_workspace_rust_version() {
    let (_, root) = repo_file("Cargo.toml");
    assert!(
        root.contains("\nrust-version = "),
        "the workspace sets none"
    );
    let members = root
        .split("members = [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("the workspace lists its members");
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if member.is_empty() {
            continue;
        }
        let (path, toml) = repo_file(&format!("{member}/Cargo.toml"));
        assert!(
            toml.contains("\nrust-version.workspace = true\n"),
            "{} does not inherit rust-version",
            path.display()
        );
    }
}
