//! What the agent finds in its environment: the sandbox's exit as every proxy variable, the
//! combined CA bundle for every common runtime, and each secret's placeholder — never a real
//! secret, never a gateway token (the relay attaches the agent's identity outside).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Variables naming the proxy, upper- and lower-case (tools disagree on which they read).
/// `FTP_PROXY` too: the Docker CLI fills in any of these five the run leaves unset from the
/// operator's `~/.docker/config.json` `proxies`, which may carry a proxy password.
pub const PROXY_VARS: &[&str] = &["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "FTP_PROXY"];

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

/// Whether `name` makes the dynamic loader or the C library load code into a process (or
/// reconfigures the loader itself): every `LD_*` (glibc's loader reads `LD_PRELOAD`,
/// `LD_LIBRARY_PATH`, `LD_AUDIT`, … and musl's the first two), `GCONV_PATH` (iconv loads
/// modules from it) and `GLIBC_TUNABLES` (parsed by the loader before any code runs).
///
/// They are refused for `--env` because the agent's environment is also that of airlock's own
/// code inside the sandbox: under bubblewrap the relay, the agent's parent, holding the gateway
/// socket and the signal pipe, starts with it (and a container's init, PID 1, does too). That
/// code must run as built. Interpreter start-up variables (`PYTHONSTARTUP`, `NODE_OPTIONS`,
/// `BASH_ENV`, …) reach only the agent's own interpreters, which run code of the agent's
/// choosing anyway, and are allowed. Matched case-insensitively: refusing `ld_preload` costs
/// nothing.
pub fn is_loader_var(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("LD_") || ["GCONV_PATH", "GLIBC_TUNABLES"].contains(&upper.as_str())
}

/// Why `--env K=V` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("--env {0:?}: expected K=V")]
    Syntax(String),
    #[error("--env {0:?}: not a valid variable")]
    Invalid(String),
    #[error("--env {name}: airlock sets {set} in the sandbox and it cannot be overridden (in any case)")]
    Reserved { name: String, set: String },
    #[error(
        "--env {0}: refused, it names a proxy (a variable ending in _PROXY, in any case: some tools read them so); \
         the sandbox's only exit is airlock's relay"
    )]
    Proxy(String),
    #[error("databases {0:?} and {1:?} would both be {2} in the sandbox: rename one")]
    DatabaseNames(String, String, String),
    #[error(
        "--env {0}: refused, it makes the dynamic loader load code (LD_*, GCONV_PATH, GLIBC_TUNABLES) into \
         airlock's own processes in the sandbox"
    )]
    Loader(String),
}

/// Whether `name` is refused as a proxy variable: Python's `urllib` takes every variable whose
/// name ends in `_proxy`, compared case-insensitively (`No_Proxy`, `hTTps_proxy`, `socks_proxy`).
pub fn is_proxy_var(name: &str) -> bool {
    name.to_ascii_uppercase().ends_with("_PROXY")
}

/// The environment of a sandboxed agent: `proxy` is the exit as seen from inside (e.g.
/// `http://127.0.0.1:3128` or `http://airlock-relay:3128`), `ca_bundle` the in-sandbox path of
/// system roots + the airlock CA, `placeholders` (variable, placeholder) pairs, `extra` the
/// user's `--env K=V` (which may not override the variables above, in any case, nor name a
/// proxy or a loader variable).
pub fn agent_env(
    proxy: &str,
    ca_bundle: &str,
    placeholders: &[(String, String)],
    extra: &[(String, String)],
) -> Result<Vec<(String, String)>, EnvError> {
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
    let airlock_sets = env.len();
    for (k, v) in extra {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(EnvError::Invalid(k.clone()));
        }
        if let Some((set, _)) = env[..airlock_sets].iter().find(|(e, _)| e.eq_ignore_ascii_case(k)) {
            return Err(EnvError::Reserved {
                name: k.clone(),
                set: set.clone(),
            });
        }
        if is_proxy_var(k) {
            return Err(EnvError::Proxy(k.clone()));
        }
        if is_loader_var(k) {
            return Err(EnvError::Loader(k.clone()));
        }
        env.push((k.clone(), v.clone()));
    }
    Ok(env)
}

/// `K=V` from the command line.
pub fn parse_env(spec: &str) -> Result<(String, String), EnvError> {
    match spec.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(EnvError::Syntax(spec.to_string())),
    }
}

/// Where the sandbox's database port is, as the agent's variables name it.
#[derive(Debug, Clone, Copy)]
pub struct DatabasePort<'a> {
    pub host: &'a str,
    pub port: u16,
    /// The in-sandbox path of the CA bundle (the one HTTPS uses: it holds airlock's CA).
    pub ca_bundle: &'a str,
}

/// The variables of an agent with databases (`databases` = (name, placeholder) pairs, in the
/// agent's order): libpq's `PGHOST`, `PGPORT`, `PGUSER` (the agent's name), `PGSSLMODE`
/// (`verify-full`) and `PGSSLROOTCERT` always; `DATABASE_URL_<NAME>` for each database (its name
/// upper-cased, `.` and `-` as `_`); and, only when there is exactly one, `DATABASE_URL`,
/// `PGDATABASE` and `PGPASSWORD` (its placeholder) — with several, which one a bare `psql` means
/// is not airlock's guess. Placeholders only: the gateway knows the agent by its socket.
pub fn database_env(
    agent: &str,
    databases: &[(String, String)],
    at: DatabasePort<'_>,
) -> Result<Vec<(String, String)>, EnvError> {
    if databases.is_empty() {
        return Ok(Vec::new());
    }
    let url = |name: &str, placeholder: &str| {
        format!(
            "postgres://{}:{}@{}:{}/{}?sslmode=verify-full&sslrootcert={}",
            utf8_percent_encode(agent, COMPONENT),
            utf8_percent_encode(placeholder, COMPONENT),
            at.host,
            at.port,
            utf8_percent_encode(name, COMPONENT),
            // `/` is a query value's own character (and the path reads as one).
            utf8_percent_encode(at.ca_bundle, PATH_VALUE),
        )
    };
    let mut env = vec![
        ("PGHOST".to_string(), at.host.to_string()),
        ("PGPORT".to_string(), at.port.to_string()),
        ("PGUSER".to_string(), agent.to_string()),
        ("PGSSLMODE".to_string(), "verify-full".to_string()),
        ("PGSSLROOTCERT".to_string(), at.ca_bundle.to_string()),
    ];
    let mut named: Vec<(String, &str)> = Vec::new();
    for (name, placeholder) in databases {
        let var = format!("DATABASE_URL_{}", name.to_ascii_uppercase().replace(['.', '-'], "_"));
        if let Some((_, other)) = named.iter().find(|(v, _)| *v == var) {
            return Err(EnvError::DatabaseNames(other.to_string(), name.clone(), var));
        }
        env.push((var.clone(), url(name, placeholder)));
        named.push((var, name));
    }
    if let [(name, placeholder)] = databases {
        env.push(("DATABASE_URL".into(), url(name, placeholder)));
        env.push(("PGDATABASE".into(), name.clone()));
        env.push(("PGPASSWORD".into(), placeholder.clone()));
    }
    Ok(env)
}

/// All but RFC 3986's unreserved characters are percent-encoded (a placeholder may hold `@`,
/// `:` or `/`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// The same, keeping `/` (a query value's own character).
const PATH_VALUE: &AsciiSet = &COMPONENT.remove(b'/');

#[cfg(test)]
mod tests {
    use super::*;

    const AT: DatabasePort<'static> = DatabasePort {
        host: "127.0.0.1",
        port: 5432,
        ca_bundle: "/run/airlock/ca.pem",
    };

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn one_database_gets_a_url_and_libpq_variables_with_its_placeholder() {
        let env = database_env("analyst", &[("app".into(), "airlock-db-app".into())], AT).unwrap();
        let url =
            "postgres://analyst:airlock-db-app@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/run/airlock/ca.pem";
        assert_eq!(get(&env, "DATABASE_URL"), Some(url));
        assert_eq!(get(&env, "DATABASE_URL_APP"), Some(url));
        for (k, v) in [
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", "5432"),
            ("PGUSER", "analyst"),
            ("PGPASSWORD", "airlock-db-app"),
            ("PGDATABASE", "app"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/run/airlock/ca.pem"),
        ] {
            assert_eq!(get(&env, k), Some(v), "{k}");
        }
        // All of them are airlock's: `--env` cannot override one.
        let placeholders: Vec<_> = env.clone();
        let refused = agent_env("p", "c", &placeholders, &[("pgpassword".into(), "x".into())]);
        assert!(matches!(refused, Err(EnvError::Reserved { .. })), "{refused:?}");
        assert!(database_env("analyst", &[], AT).unwrap().is_empty());
    }

    #[test]
    fn several_databases_get_one_url_each_and_no_default() {
        let dbs = [
            ("prod".to_string(), "p@ss:w/rd%".to_string()),
            ("read-replica.eu".to_string(), "airlock-db-rr".to_string()),
        ];
        let env = database_env("a", &dbs, AT).unwrap();
        for k in ["DATABASE_URL", "PGDATABASE", "PGPASSWORD"] {
            assert_eq!(get(&env, k), None, "{k}");
        }
        assert_eq!(
            get(&env, "DATABASE_URL_PROD"),
            Some(
                "postgres://a:p%40ss%3Aw%2Frd%25@127.0.0.1:5432/prod?sslmode=verify-full&sslrootcert=/run/airlock/ca.pem"
            )
        );
        assert!(get(&env, "DATABASE_URL_READ_REPLICA_EU").is_some_and(|u| u.contains(":airlock-db-rr@")));
        let clash = [("a-b".to_string(), "x".repeat(8)), ("a.b".to_string(), "y".repeat(8))];
        assert_eq!(
            database_env("a", &clash, AT).unwrap_err(),
            EnvError::DatabaseNames("a-b".into(), "a.b".into(), "DATABASE_URL_A_B".into())
        );
    }
}
