//! Self-contained setups for `airlock demo` and `airlock bench --local`: a local HTTPS
//! upstream's TLS, and a fresh airlock home with one sealed secret and one agent token.

use std::path::Path;
use std::sync::Arc;

use airlock_vault::{MasterKey, SecretBytes};
use tokio_rustls::TlsAcceptor;

use crate::home::{Home, Opened, create_data, now_ms, random_token, row};

/// TLS for a local upstream named `localhost`, signed by a fresh CA whose certificate is
/// written to `dir/upstream-ca.pem` (the config's `upstream_ca`).
pub fn upstream_tls(dir: &Path, alpn: &[&[u8]]) -> anyhow::Result<TlsAcceptor> {
    let (ca, files) = airlock_tls::CertificateAuthority::generate("local upstream CA")?;
    std::fs::write(dir.join("upstream-ca.pem"), &files.cert_pem)?;
    let key = airlock_tls::LeafCache::new(Arc::new(ca), 4).get("localhost")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(airlock_tls::FixedCert(key)));
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Writes `config` as `dir/airlock.toml`, creates its data directory under a new master key,
/// seals `secret` (name, value) and issues a token for `agent`. Returns the opened home and
/// the agent's token.
pub async fn home(
    dir: &Path,
    config: &str,
    secret: (&str, &[u8]),
    agent: &str,
) -> anyhow::Result<(Home, Opened, String)> {
    let cfg_path = dir.join("airlock.toml");
    std::fs::write(&cfg_path, config)?;
    let home = Home::load_local(&cfg_path)?;
    std::fs::create_dir_all(home.data_dir())?;
    let key = MasterKey::generate();
    key.write_new_file(home.master_key_path())?;
    let store = home.store.create().await?;
    create_data(&home, &store, key).await?;
    let opened = home.open().await?;
    let sealed = opened.vault.seal(secret.0, 1, &SecretBytes::new(secret.1.to_vec()));
    opened.store.put_secret(&row(&sealed, now_ms())).await?;
    let token = random_token();
    let agent_row = airlock_store::AgentRow {
        name: agent.into(),
        token_hash: airlock_gateway::token_hash(&token).to_vec(),
        created_ms: now_ms(),
    };
    opened.store.add_agent(&agent_row).await?;
    Ok((home, opened, token))
}
