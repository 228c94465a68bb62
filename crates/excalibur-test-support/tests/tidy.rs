//! Tidy checks: the crate graph follows STYLE §1, every crate documents itself,
//! `Secret::expose` is called only in allowlisted modules, libraries do not print,
//! and `ring` is not in the dependency graph.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed step should fail the test loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Which workspace crates each crate may depend on (normal dependencies).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("excalibur-core", &[][..]),
        ("excalibur-store", &["excalibur-core"][..]),
        ("excalibur-identity", &["excalibur-core"][..]),
        ("excalibur-policy", &["excalibur-core"][..]),
        (
            "excalibur-mediation",
            &["excalibur-core", "excalibur-policy"][..],
        ),
        (
            "excalibur-proxy",
            &[
                "excalibur-core",
                "excalibur-identity",
                "excalibur-policy",
                "excalibur-mediation",
            ][..],
        ),
        (
            "excalibur-api",
            &[
                "excalibur-core",
                "excalibur-store",
                "excalibur-identity",
                "excalibur-policy",
            ][..],
        ),
        (
            "excalibur",
            &[
                "excalibur-core",
                "excalibur-store",
                "excalibur-identity",
                "excalibur-policy",
                "excalibur-mediation",
                "excalibur-proxy",
                "excalibur-api",
                "excalibur-ssh",
            ][..],
        ),
        ("excalibur-ssh", &["excalibur-core"][..]),
        ("excalibur-ctl", &["excalibur-core"][..]),
        ("excalibur-test-support", &["excalibur-core"][..]),
    ])
}

#[test]
fn crate_graph_flows_one_way() {
    let meta = metadata();
    let allowed = allowed();
    for pkg in meta["packages"].as_array().unwrap() {
        let name = pkg["name"].as_str().unwrap();
        if !name.starts_with("excalibur") {
            continue;
        }
        let Some(may) = allowed.get(name) else {
            panic!("crate `{name}` is not in the STYLE §1 table")
        };
        for dep in pkg["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            let normal = dep["kind"].is_null();
            if dep_name.starts_with("excalibur") && normal {
                assert!(
                    may.contains(&dep_name),
                    "`{name}` must not depend on `{dep_name}`"
                );
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_crate_opens_with_a_purpose() {
    let crates = workspace_root().join("crates");
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let root = if dir.join("src/lib.rs").exists() {
            dir.join("src/lib.rs")
        } else {
            dir.join("src/main.rs")
        };
        let text = std::fs::read_to_string(&root).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must open with a `//!` doc",
            root.display()
        );
        if root.ends_with("lib.rs") {
            for section in ["**Owns:**", "**Never:**", "**Start at:**"] {
                assert!(text.contains(section), "{} lacks {section}", root.display());
            }
        }
    }
}

/// Modules allowed to read a secret's bytes: sealing, substitution/scrubbing,
/// TLS key loading, and the one-time display of a freshly issued token.
const EXPOSE_ALLOWED: &[&str] = &[
    "excalibur-core/src/secret.rs",
    "excalibur-core/src/ids.rs",
    "excalibur-store/src/seal.rs",
    "excalibur-identity/src/mint.rs",
    "excalibur-proxy/src/ca.rs",
    "excalibur-mediation/src/substitute.rs",
    "excalibur-mediation/src/sigv4.rs",
    "excalibur-mediation/src/jwt_bearer.rs",
    "excalibur-mediation/src/dpop.rs",
    // The one-time display of a freshly issued token (`handlers::exposed`), the shape
    // checks of submitted secrets, and the UI's shown-once box.
    "excalibur-api/src/handlers/mod.rs",
    "excalibur-api/src/validate.rs",
    "excalibur-api/src/ui/view.rs",
    "excalibur-api/src/exchange.rs",
    "excalibur/src/init.rs",
    "excalibur/src/webhooks.rs",
    // The audit checkpoint signing key, loaded once at start.
    "excalibur/src/checkpoint.rs",
    // SSH key loading, and the session token put in the target's environment.
    "excalibur-ssh/src/lib.rs",
    "excalibur-ssh/src/relay.rs",
];

#[test]
fn secrets_are_exposed_only_where_allowed() {
    let crates = workspace_root().join("crates");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    let mut offenders = BTreeSet::new();
    for f in files {
        let rel = f
            .strip_prefix(&crates)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.contains("/tests/")
            || rel.ends_with("/tests.rs")
            || rel.starts_with("excalibur-test-support")
        {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        if code.contains(".expose()") && !EXPOSE_ALLOWED.contains(&rel.as_str()) {
            offenders.insert(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "Secret::expose() outside the allowlist: {offenders:?}"
    );
}

#[test]
fn libraries_do_not_print() {
    let crates = workspace_root().join("crates");
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("src/lib.rs").exists() || dir.ends_with("excalibur-test-support") {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        // A crate with both (excalibur-ctl): its binary (main.rs and the modules it
        // declares) prints; its library may not.
        let src = dir.join("src");
        let bin_modules: Vec<PathBuf> = std::fs::read_to_string(src.join("main.rs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned))
            .flat_map(|m| [src.join(format!("{m}.rs")), src.join(&m)])
            .collect();
        files.retain(|f| {
            !f.ends_with("src/main.rs") && !bin_modules.iter().any(|m| f.starts_with(m))
        });
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for bad in ["println!", "eprintln!", concat!("dbg", "!(")] {
                assert!(
                    !text.contains(bad),
                    "{} uses {bad}; libraries log through tracing",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn ring_is_not_in_the_graph() {
    // One crypto provider: aws-lc-rs. `cargo tree -i` prints nothing for a package that
    // no activated dependency edge reaches, on any target.
    for banned in ["ring", "openssl-sys", "native-tls"] {
        let out = Command::new(env!("CARGO"))
            .args([
                "tree",
                "--target",
                "all",
                "-e",
                "normal,build,dev",
                "-i",
                banned,
            ])
            .current_dir(workspace_root())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.trim().is_empty(),
            "`{banned}` is in the dependency graph:\n{stdout}"
        );
    }
}
