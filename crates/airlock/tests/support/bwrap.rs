//! For tests of `airlock run --runtime bwrap`: the host's Python to mount into the sandbox, and
//! what a process inside looks for of a secret.

use std::process::Command;

use super::text;

/// `script` (Python, defining `needles`, a list of bytes, and importing `os` and `json`), then a
/// last line listing the files under /etc, /tmp and HOME, and /proc/self/environ, that hold a
/// needle: what a process inside a sandbox can find of a secret.
pub fn with_needle_scan(script: &str) -> String {
    format!(
        r#"{script}
found = []
for root in ["/proc/self/environ", "/etc", "/tmp", os.environ.get("HOME", "/nonexistent")]:
    paths = [root] if os.path.isfile(root) else [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    for p in paths:
        try:
            data = open(p, "rb").read()
        except OSError:
            continue
        found += [p for n in needles if n in data]
print(json.dumps(found))
"#
    )
}

/// For `airlock run --runtime bwrap` tests: requires bubblewrap and a `python3` that can import
/// `module` (`.ci/run` installs both); returns that Python's prefix, to mount read-only.
pub fn bwrap_python(module: &str) -> String {
    let bwrap = Command::new("bwrap").arg("--version").output();
    assert!(
        bwrap.is_ok_and(|o| o.status.success()),
        "bwrap is required for these tests (.ci/run installs it)"
    );
    let o = Command::new("python3")
        .args(["-c", &format!("import sys, {module}; print(sys.prefix)")])
        .output()
        .expect("python3 is required by the tests (.ci/run installs it)");
    assert!(o.status.success(), "python3 with {module} is required: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
