//! The `airlock` command: configuration, wiring and the operator's tools.
#![forbid(unsafe_code)]

/// One line of output whose text may come from an agent (a URL, a path, a body reading): it
/// goes through the cards' `one_line`, so ESC, C1 controls, bidi overrides and decoded newlines
/// are shown as `<U+XXXX>` / spaces instead of reaching the terminal.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", airlock_channels::text::one_line(&format!($($arg)*)))
    };
}

mod admin;
mod apikey;
mod approvals;
mod approvals_cli;
mod bench;
mod bench_load;
mod bench_local;
mod bench_suite;
mod client;
mod connect;
mod databases;
mod demo;
mod explain;
mod explain_sql;
mod healthcheck;
mod home;
mod local;
mod logs;
mod memory;
mod onecli;
mod policy_test;
mod reload;
mod run;
mod serve;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

// The request path allocates many small, short-lived buffers across threads; glibc's
// allocator spent ~8% of the gateway's CPU on them in profiles (docs/performance.md).
// `--features system-allocator` keeps glibc's, for heap profilers that hook malloc (heaptrack).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `0.1.0 (commit abc123…)`: the release and the commit it was built from.
pub(crate) const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("AIRLOCK_GIT_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "airlock",
    version = VERSION,
    about = "The security gateway AI agents cannot talk their way past."
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "AIRLOCK_CONFIG", default_value = "airlock.toml")]
    config: PathBuf,
    /// Log format on stderr: text (the default on a terminal) or json (the default otherwise).
    #[arg(long, global = true, env = "AIRLOCK_LOG_FORMAT", value_enum)]
    log_format: Option<logs::LogFormat>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write an example airlock.toml and create the data directory (CA, master key, database).
    Init {
        /// Where to create airlock.toml and its data directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run the gateway (agents' proxy) and the control plane.
    Serve,
    /// Run an agent in a sandbox whose only way out is the gateway (docker, podman or bwrap).
    Run(run::RunArgs),
    /// The sandbox's exit (started by `airlock run` inside the sandbox).
    #[command(hide = true)]
    Relay(run::RelayArgs),
    /// Manage agents and their gateway tokens.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Scoped API keys for the OneCLI-compatible API ([compat.onecli]).
    #[command(subcommand)]
    Apikey(ApikeyCmd),
    /// Manage sealed secrets.
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Connect an OAuth2 secret (kind = "oauth2"): consent in a browser, seal the refresh token.
    Connect { name: String },
    /// Vault maintenance.
    #[command(subcommand)]
    Vault(VaultCmd),
    /// The local certificate authority agents must trust.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Validate and explain the policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Inspect and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Approvers: dashboard sign-in.
    #[command(subcommand)]
    Person(PersonCmd),
    /// Held requests: list, show, decide, watch; grants.
    #[command(subcommand)]
    Approvals(ApprovalsCmd),
    /// The running gateway: version, uptime, the policy in force, held approvals, channels.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// A one-minute tour: gateway, a local HTTPS mail API, and a scripted agent.
    Demo {
        /// Approve the held "send mail" request without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Load-test a proxy (or the direct path) with keep-alive or per-request HTTPS tunnels.
    Bench(bench::BenchArgs),
    /// Probe the control plane's /readyz: exit 0 when ready, 1 otherwise (container HEALTHCHECK).
    Healthcheck {
        /// The control plane's base URL (default: AIRLOCK_CONTROL_URL, else gateway.control).
        #[arg(long)]
        url: Option<String>,
    },
    /// Print a shell completion script: `airlock completions bash > /etc/bash_completion.d/airlock`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `airlock man > airlock.1`.
    Man,
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Issue a token for a declared agent; prints its proxy URL last.
    Add {
        name: String,
    },
    List,
    Rm {
        name: String,
    },
}

#[derive(Subcommand)]
enum ApikeyCmd {
    /// Issue a key; prints it last (shown once, stored hashed).
    Add {
        name: String,
        /// What it may do: provision (agents, container config), approvals (held requests, decisions).
        #[arg(long, value_name = "SCOPES")]
        scope: String,
    },
    List,
    /// Revoke a key (at once, also while the gateway runs).
    Rm {
        name: String,
    },
}

#[derive(Subcommand)]
enum SecretCmd {
    /// Read the value from stdin and seal it (never pass secrets as arguments).
    Set {
        name: String,
    },
    List,
    Rm {
        name: String,
    },
}

#[derive(Subcommand)]
enum VaultCmd {
    /// Generate a new master key and re-seal every secret with it.
    RotateKey {
        /// With AIRLOCK_MASTER_KEY set, where to write the new key (mode 0600).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CaCmd {
    /// Print the CA certificate's path.
    Path,
    /// Print the CA certificate (PEM).
    Export,
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Validate the configuration.
    Check,
    /// Load the config file into the running gateway: the new rules apply to new requests,
    /// held approvals stay held (SIGHUP does the same).
    Reload,
    /// Replay the audited requests of the past through the config (`--config`): what would be
    /// decided differently. Exit 0 when nothing changes, 1 when something would, 2 when the
    /// policy is invalid or the history cannot be read.
    Test {
        /// How far back: "7d", "12h", "30m".
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long)]
        json: bool,
    },
    /// Rules added, removed and changed from OLD to NEW, and the held approvals (in OLD's
    /// store) a reload to NEW would refuse. Exit 0 when the policies are the same.
    Diff { old: PathBuf, new: PathBuf },
    /// Show the decision for a request (METHOD URL), or for SQL sent to a database (--database
    /// NAME --sql TEXT), the rules that matched, and why.
    Explain {
        #[arg(required_unless_present = "database", conflicts_with = "database")]
        method: Option<String>,
        #[arg(required_unless_present = "database", conflicts_with = "database")]
        url: Option<String>,
        /// A `[databases.NAME]` entry: explain `--sql` as the database gateway decides it.
        #[arg(long, requires = "sql")]
        database: Option<String>,
        /// The SQL text (every statement of a multi-statement string is shown).
        #[arg(long, requires = "database")]
        sql: Option<String>,
        #[arg(long, default_value = "")]
        agent: String,
        /// A request header, "Name: value"; repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// A file holding the request body.
        #[arg(long)]
        body: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PersonCmd {
    /// Set a person's dashboard password (read from stdin).
    Passwd { name: String },
}

#[derive(Subcommand)]
enum ApprovalsCmd {
    /// Pending approvals (all recent ones with --all).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// The full card of one approval.
    Show { id: String },
    /// Approve as a configured person (`--grant`: and let matching requests through for the rule's grant period).
    Approve {
        id: String,
        #[arg(long = "as")]
        person: String,
        #[arg(long)]
        grant: bool,
    },
    /// Deny as a configured person.
    Deny {
        id: String,
        #[arg(long = "as")]
        person: String,
    },
    /// Print approvals as they arrive; with --as, ask for a decision on each.
    Watch {
        #[arg(long = "as")]
        person: Option<String>,
    },
    /// Live grants.
    Grants,
    /// End a grant now.
    Revoke {
        grant: String,
        #[arg(long = "as", default_value = "operator")]
        person: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Exit 0 if the hash chain and its signed checkpoints are intact.
    Verify,
    /// Print the last records.
    Tail {
        #[arg(short = 'n', default_value_t = 20)]
        n: i64,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logs::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let cfg = cli.config;
    match cli.cmd {
        Cmd::Init { dir } => home::init(&dir).await?,
        Cmd::Serve => serve::serve(&cfg).await?,
        Cmd::Run(args) => return run::run(&cfg, args).await,
        Cmd::Relay(args) => return run::relay(args).await,
        Cmd::Agent(AgentCmd::Add { name }) => admin::agent_add(&cfg, &name).await?,
        Cmd::Agent(AgentCmd::List) => admin::agent_list(&cfg).await?,
        Cmd::Agent(AgentCmd::Rm { name }) => admin::agent_rm(&cfg, &name).await?,
        Cmd::Apikey(ApikeyCmd::Add { name, scope }) => apikey::add(&cfg, &name, &scope).await?,
        Cmd::Apikey(ApikeyCmd::List) => apikey::list(&cfg).await?,
        Cmd::Apikey(ApikeyCmd::Rm { name }) => apikey::rm(&cfg, &name).await?,
        Cmd::Secret(SecretCmd::Set { name }) => admin::secret_set(&cfg, &name).await?,
        Cmd::Secret(SecretCmd::List) => admin::secret_list(&cfg).await?,
        Cmd::Secret(SecretCmd::Rm { name }) => admin::secret_rm(&cfg, &name).await?,
        Cmd::Connect { name } => connect::connect(&cfg, &name).await?,
        Cmd::Vault(VaultCmd::RotateKey { out }) => admin::rotate_key(&cfg, out.as_deref()).await?,
        Cmd::Ca(CaCmd::Path) => println!("{}", home::Home::load(&cfg)?.ca_cert_path().display()),
        Cmd::Ca(CaCmd::Export) => print!("{}", std::fs::read_to_string(home::Home::load(&cfg)?.ca_cert_path())?),
        Cmd::Policy(PolicyCmd::Check) => return admin::policy_check(&cfg),
        Cmd::Policy(PolicyCmd::Reload) => admin::policy_reload(&cfg).await?,
        Cmd::Policy(PolicyCmd::Test { since, json }) => return Ok(policy_test::policy_test(&cfg, &since, json).await),
        Cmd::Policy(PolicyCmd::Diff { old, new }) => return Ok(policy_test::policy_diff(&old, &new).await),
        Cmd::Policy(PolicyCmd::Explain {
            method,
            url,
            database,
            sql,
            agent,
            headers,
            body,
        }) => {
            if let (Some(database), Some(sql)) = (database, sql) {
                return explain_sql::explain(&cfg, &database, &sql, &agent);
            }
            let (method, url) = (method.unwrap_or_default(), url.unwrap_or_default());
            return explain::policy_explain(&cfg, &method, &url, &agent, &headers, body.as_deref());
        }
        Cmd::Audit(AuditCmd::Verify) => return admin::audit_verify(&cfg).await,
        Cmd::Audit(AuditCmd::Tail { n, json }) => admin::audit_tail(&cfg, n, json).await?,
        Cmd::Person(PersonCmd::Passwd { name }) => admin::person_passwd(&cfg, &name).await?,
        Cmd::Approvals(a) => match a {
            ApprovalsCmd::List { all, json } => approvals_cli::list(&cfg, all, json).await?,
            ApprovalsCmd::Show { id } => approvals_cli::show(&cfg, &id).await?,
            ApprovalsCmd::Approve { id, person, grant } => {
                approvals_cli::vote(&cfg, &id, &person, if grant { "grant" } else { "approve" }).await?
            }
            ApprovalsCmd::Deny { id, person } => approvals_cli::vote(&cfg, &id, &person, "deny").await?,
            ApprovalsCmd::Watch { person } => approvals_cli::watch(&cfg, person.as_deref()).await?,
            ApprovalsCmd::Grants => approvals_cli::grants(&cfg).await?,
            ApprovalsCmd::Revoke { grant, person } => approvals_cli::revoke(&cfg, &grant, &person).await?,
        },
        Cmd::Status { json } => admin::status(&cfg, json).await?,
        Cmd::Demo { yes } => demo::run(yes).await?,
        Cmd::Bench(args) => bench::run(args).await?,
        Cmd::Healthcheck { url } => return healthcheck::run(&cfg, url.as_deref()).await,
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "airlock", &mut std::io::stdout());
        }
        Cmd::Man => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?,
    }
    Ok(ExitCode::SUCCESS)
}
