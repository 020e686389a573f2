//! The operator's installation: the config file, its data directory (CA, master key, control
//! token, and the SQLite database by default) and the store, created by `airlock init` and opened
//! by every command.

use std::io::Write;
use std::path::{Path, PathBuf};

use airlock_config::Config;
use airlock_store::{SecretRow, Store};
use airlock_vault::{AuditSigner, MasterKey, SealedSecret, Vault, VaultError};
use anyhow::{Context, bail};

/// The vault entry holding the audit log's Ed25519 signing key (hidden from `secret list`).
pub const AUDIT_KEY: &str = "__airlock_audit_signing_key";
/// The vault entry holding the key that signs approval buttons' tokens. In the vault, not in
/// each process: every replica sharing the store verifies a click on a card any of them sent.
pub const BUTTON_KEY: &str = "__airlock_button_token_key";
/// The vault entry holding the key the credentials of agents created through the OneCLI API
/// are derived from.
pub const AGENT_KEY: &str = "__airlock_onecli_agent_key";

/// Vault entries airlock keeps for itself (hidden from `secret list`, refused by `secret rm`).
pub fn is_internal(name: &str) -> bool {
    name == AUDIT_KEY || name == BUTTON_KEY || name == AGENT_KEY
}
/// The environment variable that may carry the master key instead of a file.
pub const MASTER_KEY_ENV: &str = "AIRLOCK_MASTER_KEY";
/// The environment variable naming the store's PostgreSQL database; overrides `[store] url`.
pub const STORE_URL_ENV: &str = "AIRLOCK_STORE_URL";

pub struct Home {
    pub config: Config,
    pub store: StoreAt,
}

/// Where the store lives.
#[derive(Clone)]
pub enum StoreAt {
    /// The SQLite file in data_dir: the default.
    File(PathBuf),
    /// A PostgreSQL URL. It may carry a password: show [`StoreAt::describe`], never the URL.
    Url(String),
}

impl StoreAt {
    /// `AIRLOCK_STORE_URL`, else `[store] url`, else the SQLite file in data_dir. A variable that
    /// is set but empty or malformed is an error: falling back to a private SQLite file would
    /// split replicas that are meant to share one database.
    fn configured(config: &Config) -> anyhow::Result<StoreAt> {
        match std::env::var(STORE_URL_ENV) {
            Ok(url) => {
                airlock_config::check_store_url(&url)
                    .map_err(|problem| anyhow::anyhow!("{STORE_URL_ENV}: {problem}"))?;
                Ok(StoreAt::Url(url))
            }
            Err(std::env::VarError::NotUnicode(_)) => bail!("{STORE_URL_ENV} is not valid UTF-8"),
            Err(std::env::VarError::NotPresent) => Ok(match &config.store.url {
                Some(url) => StoreAt::Url(url.clone()),
                None => StoreAt::File(config.gateway.data_dir.join("airlock.db")),
            }),
        }
    }

    /// For messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreAt::File(path) => format!("SQLite database {}", path.display()),
            StoreAt::Url(url) => format!("PostgreSQL database {}", airlock_store::redact_url(url)),
        }
    }

    /// Opens the existing store, applying pending migrations.
    pub async fn open(&self) -> anyhow::Result<Store> {
        match self {
            StoreAt::File(db) => {
                if !db.exists() {
                    bail!("no database at {} (run \"airlock init\" first)", db.display());
                }
                Store::open(&db.to_string_lossy())
                    .await
                    .with_context(|| format!("cannot open {}", db.display()))
            }
            StoreAt::Url(url) => Ok(Store::open(url).await?),
        }
    }

    /// Creates the store `airlock init` sets up (refusing an existing one).
    pub async fn create(&self) -> anyhow::Result<Store> {
        Ok(match self {
            StoreAt::File(db) => Store::create_sqlite(db).await?,
            StoreAt::Url(url) => Store::create(url).await?,
        })
    }
}

/// An opened installation: store, vault and audit signer ready.
pub struct Opened {
    pub store: Store,
    pub vault: Vault,
    pub signer: AuditSigner,
}

impl Home {
    pub fn load(config: &Path) -> anyhow::Result<Home> {
        let config = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = StoreAt::configured(&config)?;
        Ok(Home { config, store })
    }

    /// A home whose store is the one its config names — `[store] url`, else the SQLite file in
    /// its data_dir — whatever the environment says: the self-contained setups of `airlock demo`
    /// and `airlock bench --local`.
    pub fn load_local(config: &Path) -> anyhow::Result<Home> {
        let config = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = match &config.store.url {
            Some(url) => StoreAt::Url(url.clone()),
            None => StoreAt::File(config.gateway.data_dir.join("airlock.db")),
        };
        Ok(Home { config, store })
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.gateway.data_dir
    }
    pub fn ca_cert_path(&self) -> PathBuf {
        self.data_dir().join("ca.pem")
    }
    pub fn ca_key_path(&self) -> PathBuf {
        self.data_dir().join("ca-key.pem")
    }
    pub fn master_key_path(&self) -> PathBuf {
        self.data_dir().join("master.key")
    }
    pub fn control_token_path(&self) -> PathBuf {
        self.data_dir().join("control.token")
    }
    /// Where `airlock serve` listens for agent `name`'s sandbox (see `airlock run`).
    pub fn agent_socket_path(&self, name: &str) -> PathBuf {
        self.data_dir().join("agents").join(format!("{name}.sock"))
    }
    /// Where `airlock serve` listens for agent `name`'s sandboxed database clients (a directory
    /// of its own: no agent name can make it another agent's HTTP socket).
    pub fn agent_database_socket_path(&self, name: &str) -> PathBuf {
        self.data_dir()
            .join("agents")
            .join("postgres")
            .join(format!("{name}.sock"))
    }

    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return MasterKey::parse(&text).with_context(|| format!("{MASTER_KEY_ENV} is not a valid master key"));
        }
        let p = self.master_key_path();
        MasterKey::load_file(&p).with_context(|| format!("cannot load the master key from {}", p.display()))
    }

    /// Opens the store and vault; refuses (touching nothing) when the master key is not
    /// the one the vault was sealed with.
    pub async fn open(&self) -> anyhow::Result<Opened> {
        let store = self.store.open().await?;
        let vault = Vault::new(self.master_key()?);
        let row = store
            .get_secret(AUDIT_KEY)
            .await?
            .context("the vault has no audit signing key: the database was not created by \"airlock init\"")?;
        let seed = match vault.open(&sealed(&row)) {
            Ok(s) => s,
            Err(VaultError::KeyMismatch { sealed_with, have, .. }) => bail!(
                "wrong master key: the vault was sealed with key {sealed_with}, but the key given has id {have}; \
                 nothing was changed (check {MASTER_KEY_ENV} or {})",
                self.master_key_path().display()
            ),
            Err(e) => bail!("cannot open the audit signing key: {e}"),
        };
        let signer = AuditSigner::from_seed(&seed)?;
        Ok(Opened { store, vault, signer })
    }
}

pub fn sealed(r: &SecretRow) -> SealedSecret {
    SealedSecret {
        name: r.name.clone(),
        version: u32::try_from(r.version).unwrap_or(u32::MAX),
        key_id: r.key_id.clone(),
        nonce: r.nonce.clone(),
        ciphertext: r.ciphertext.clone(),
    }
}

pub fn row(s: &SealedSecret, now_ms: i64) -> SecretRow {
    SecretRow {
        name: s.name.clone(),
        version: i64::from(s.version),
        key_id: s.key_id.clone(),
        nonce: s.nonce.clone(),
        ciphertext: s.ciphertext.clone(),
        updated_ms: now_ms,
    }
}

pub fn now_ms() -> i64 {
    airlock_gateway::now_ms() as i64
}

/// Writes a new file readable by the owner only.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

/// `airlock init`: example config, CA, master key, database, audit key, control token.
pub async fn init(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cfg_path = dir.join("airlock.toml");
    if cfg_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite an existing setup",
            cfg_path.display()
        );
    }
    let config = Config::parse(airlock_config::EXAMPLE, &cfg_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let data = config.gateway.data_dir.clone();
    if data.exists() && std::fs::read_dir(&data)?.next().is_some() {
        bail!(
            "{} already exists and is not empty; refusing to overwrite an existing setup",
            data.display()
        );
    }
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    }
    let store = StoreAt::configured(&config)?;
    let home = Home { config, store };
    // The store first: an unreachable server, or a database that already holds a store, stops
    // init before it has written anything but the empty data directory.
    let store = home.store.create().await?;
    std::fs::write(&cfg_path, airlock_config::EXAMPLE)?;
    let key = match std::env::var(MASTER_KEY_ENV) {
        Ok(text) => MasterKey::parse(&text).with_context(|| format!("{MASTER_KEY_ENV} is not a valid master key"))?,
        Err(_) => {
            let k = MasterKey::generate();
            k.write_new_file(home.master_key_path())?;
            k
        }
    };
    create_data(&home, &store, key).await?;
    println!("created {}", cfg_path.display());
    println!("created {} (CA certificate, master key, control token)", data.display());
    println!("created the store: {}", home.store.describe());
    println!("next: airlock --config {} policy check", cfg_path.display());
    Ok(())
}

/// Fills a new data directory and the newly created `store`: CA, sealed audit signing key,
/// control token. Closes the store.
pub async fn create_data(home: &Home, store: &Store, key: MasterKey) -> anyhow::Result<()> {
    let (_ca, files) = airlock_tls::CertificateAuthority::generate("airlock local CA")?;
    std::fs::write(home.ca_cert_path(), &files.cert_pem)?;
    write_private(&home.ca_key_path(), files.key_pem.as_bytes())?;
    let vault = Vault::new(key);
    let (_signer, seed) = AuditSigner::generate();
    store
        .put_secret(&row(&vault.seal(AUDIT_KEY, 1, &seed), now_ms()))
        .await?;
    button_key(store, &vault).await?;
    let token = random_token();
    write_private(&home.control_token_path(), token.as_bytes())?;
    store
        .set_meta("control_token_sha256", &airlock_gateway::token_hash(&token))
        .await?;
    store.close().await;
    Ok(())
}

/// The button-token key from the vault, created on first use. `airlock init` creates it, so
/// replicas find it; an installation made before it existed gets one at its first start (two
/// replicas starting together for the very first time could each write one, and the earlier
/// one's buttons would then be refused as forged — they can vote from the dashboard).
pub async fn button_key(store: &Store, vault: &Vault) -> anyhow::Result<airlock_vault::SecretBytes> {
    if let Some(r) = store.get_secret(BUTTON_KEY).await? {
        return vault
            .open(&sealed(&r))
            .map_err(|e| anyhow::anyhow!("cannot open the approval buttons' key: {e}"));
    }
    let key: [u8; 32] = rand::random();
    let key = airlock_vault::SecretBytes::new(key.to_vec());
    store
        .put_secret(&row(&vault.seal(BUTTON_KEY, 1, &key), now_ms()))
        .await?;
    Ok(key)
}

/// 32 random bytes as URL-safe base64: agent and control tokens.
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
