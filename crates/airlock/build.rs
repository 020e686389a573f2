//! Stamps the binary with the git commit it was built from (`airlock --version`). Outside a git
//! checkout (a source tarball, a vendored copy) or without git, the commit is "unknown" — or
//! what the packager sets in AIRLOCK_GIT_COMMIT. This script never fails the build.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=AIRLOCK_GIT_COMMIT");
    let given = std::env::var("AIRLOCK_GIT_COMMIT")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let commit = given
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .filter(|s| s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=AIRLOCK_GIT_COMMIT={commit}");
    // Build again when HEAD moves: HEAD itself, the branch it names, and the packed refs.
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watch.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
