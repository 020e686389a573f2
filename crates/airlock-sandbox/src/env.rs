//! What the agent finds in its environment: the sandbox's exit as every proxy variable, the
//! combined CA bundle for every common runtime, and each secret's placeholder — never a real
//! secret, never a gateway token (the relay attaches the agent's identity outside).

/// Variables naming the proxy, upper- and lower-case (tools disagree on which they read).
pub const PROXY_VARS: &[&str] = &["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"];

/// Variables naming a CA bundle, per runtime.
pub const CA_VARS: &[&str] = &[
    "SSL_CERT_FILE",       // OpenSSL, Python ssl, Go, Rust (rustls-native-certs)
    "REQUESTS_CA_BUNDLE",  // Python requests
    "CURL_CA_BUNDLE",      // curl
    "NODE_EXTRA_CA_CERTS", // Node.js (added to its own roots)
    "GIT_SSL_CAINFO",      // git
    "PIP_CERT",            // pip
    "DENO_CERT",           // Deno
    "AWS_CA_BUNDLE",       // AWS CLI and SDKs
];

/// The environment of a sandboxed agent: `proxy` is the exit as seen from inside (e.g.
/// `http://127.0.0.1:3128` or `http://airlock-relay:3128`), `ca_bundle` the in-sandbox path of
/// system roots + the airlock CA, `placeholders` (variable, placeholder) pairs, `extra` the
/// user's `--env K=V` (which may not override the variables above).
pub fn agent_env(
    proxy: &str,
    ca_bundle: &str,
    placeholders: &[(String, String)],
    extra: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    for v in PROXY_VARS {
        env.push((v.to_string(), proxy.to_string()));
        env.push((v.to_lowercase(), proxy.to_string()));
    }
    // Empty on purpose: nothing bypasses the exit (there is no other route anyway).
    env.push(("NO_PROXY".into(), String::new()));
    env.push(("no_proxy".into(), String::new()));
    for v in CA_VARS {
        env.push((v.to_string(), ca_bundle.to_string()));
    }
    for (k, v) in placeholders {
        env.push((k.clone(), v.clone()));
    }
    for (k, v) in extra {
        if env.iter().any(|(e, _)| e == k) {
            return Err(format!(
                "--env {k}: airlock sets this variable in the sandbox and it cannot be overridden"
            ));
        }
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(format!("--env {k:?}: not a valid variable"));
        }
        env.push((k.clone(), v.clone()));
    }
    Ok(env)
}

/// `K=V` from the command line.
pub fn parse_env(spec: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("--env {spec:?}: expected K=V")),
    }
}
