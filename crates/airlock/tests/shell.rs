//! The operator's shell: `--version` names the commit, completion scripts and the man page
//! come from the binary itself.
mod support;
use std::process::Command;
use support::*;

fn run(args: &[&str]) -> (bool, String) {
    let o = Command::new(BIN)
        .args(args)
        .env_remove("AIRLOCK_CONFIG")
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn version_names_the_release_and_the_commit() {
    let (ok, out) = run(&["--version"]);
    assert!(ok, "{out}");
    let line = out.trim();
    assert!(
        line.starts_with(&format!("airlock {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    let commit = line.rsplit_once("(commit ").unwrap().1.trim_end_matches(')');
    // build.rs stamps this test crate too: the binary says the same.
    assert_eq!(Some(commit), option_env!("AIRLOCK_GIT_COMMIT"), "{line}");
    let from_git = commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit());
    // "unknown" outside git, or a name the packager set in AIRLOCK_GIT_COMMIT at build time.
    assert!(
        commit == "unknown" || from_git || std::env::var_os("AIRLOCK_GIT_COMMIT").is_some(),
        "{line}"
    );
    // Built from this checkout: a commit git knows (the binary may lag HEAD by a commit or two).
    if from_git {
        let o = Command::new("git")
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{line}: not a commit of this repository");
    }
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef airlock"),
        ("fish", "complete -c airlock"),
    ] {
        let (ok, out) = run(&["completions", shell]);
        assert!(ok, "{shell}: {out}");
        assert!(out.contains("airlock") && out.contains(marker), "{shell}: {out}");
        // Subcommands and global flags are offered.
        assert!(
            out.contains("serve") && out.contains("policy") && out.contains("log-format"),
            "{shell}"
        );
    }
    let (ok, _) = run(&["completions", "tcsh"]);
    assert!(!ok, "an unknown shell is refused");
}

#[test]
fn bash_accepts_its_completion_script() {
    if Command::new("bash").arg("--version").output().is_err() {
        return;
    }
    let (_, script) = run(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("airlock.bash");
    std::fs::write(&path, script).unwrap();
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(". {} && complete -p airlock", path.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("airlock"));
}

#[test]
fn the_man_page_is_roff_and_documents_the_commands() {
    let (ok, out) = run(&["man"]);
    assert!(ok, "{out}");
    // A roff preamble (the apostrophe string for groff and others), then the title header
    // before any section.
    let first_macro = out
        .lines()
        .find(|l| l.starts_with(".TH") || l.starts_with(".SH"))
        .unwrap_or_default();
    assert!(
        first_macro.starts_with(".TH airlock 1"),
        "{}",
        &out[..out.len().min(300)]
    );
    assert!(
        out.lines().take(3).all(|l| l.starts_with('.')),
        "not roff: {}",
        &out[..out.len().min(300)]
    );
    assert!(first_macro.contains(env!("CARGO_PKG_VERSION")), "{first_macro}");
    assert!(out.contains("airlock") && out.contains("serve") && out.contains("completions"));
}
