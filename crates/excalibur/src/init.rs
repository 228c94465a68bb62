//! First start and every start: logging, the data directory, the master key, the store,
//! the CA and the bootstrap admin token.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use excalibur_core::Secret;
use excalibur_core::api::TokenInfo;
use excalibur_core::ids::{IssuedToken, Role, TokenId};
use excalibur_core::secret::{hex, unhex};
use excalibur_core::time::Timestamp;
use excalibur_proxy::ca::CertAuthority;
use excalibur_store::Store;
use excalibur_store::fs::{create_dir_private, write_private, write_public};
use excalibur_store::postgres::PgConnect;
use excalibur_store::seal::MasterKey;
use excalibur_store::sql::SqlStore;
use excalibur_store::sqlite::SqliteStore;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

const CA_KEY_SETTING: &str = "ca_key_pem";
const CA_CERT_SETTING: &str = "ca_cert_pem";

pub(crate) fn logging(config: &Config) {
    let filter =
        EnvFilter::try_from_env("EXCALIBUR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // aws-sigv4 traces canonical requests, which carry session tokens: never log them,
    // whatever EXCALIBUR_LOG asks for.
    let filter = match "aws_sigv4=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // Colour only for a person at a terminal: never into a file, a pipe or a log
    // collector, and never with NO_COLOR set (https://no-color.org).
    let ansi = {
        use std::io::IsTerminal as _;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// How to reach PostgreSQL, when configured: the URL (it may carry a password: kept as a
/// `Secret` in the config) and the CA file for TLS.
pub(crate) fn database(config: &Config) -> anyhow::Result<Option<PgConnect>> {
    let Some(url) = &config.database_url else {
        return Ok(None);
    };
    let url = String::from_utf8_lossy(url.expose()).into_owned();
    let ca = match &config.database_ca_file {
        Some(path) => Some(std::fs::read(path).with_context(|| {
            format!("cannot read EXCALIBUR_DATABASE_CA_FILE {}", path.display())
        })?),
        None => None,
    };
    let connect = PgConnect::new(&url, ca.as_deref()).map_err(|e| {
        anyhow::anyhow!("EXCALIBUR_DATABASE_URL: {}", excalibur_core::ErrorChain(&e))
    })?;
    Ok(Some(connect))
}

/// Opens or creates everything in the data dir, and the store: PostgreSQL when
/// `database` is set (every replica must then share `EXCALIBUR_MASTER_KEY`), else the
/// SQLite file in the data dir. Blocking; run it before serving.
pub(crate) fn store(data_dir: &Path, database: Option<&PgConnect>) -> anyhow::Result<SqliteStore> {
    create_dir_private(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let master = master_key(data_dir)?;
    if let Some(connect) = database {
        return SqlStore::connect_postgres(connect, &master).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the PostgreSQL store: {}",
                excalibur_core::ErrorChain(&e)
            )
        });
    }
    let db = data_dir.join("excalibur.db");
    // SQLite gives its -wal and -shm files the database file's mode: create it 0600.
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db)
            .with_context(|| format!("cannot create {}", db.display()))?;
    }
    SqliteStore::open(&db, &master)
        .map_err(|e| anyhow::anyhow!("cannot open the store: {}", excalibur_core::ErrorChain(&e)))
}

fn master_key(data_dir: &Path) -> anyhow::Result<MasterKey> {
    if let Ok(v) = std::env::var("EXCALIBUR_MASTER_KEY") {
        let bytes = unhex(v.trim()).filter(|b| b.len() == 32);
        let Some(bytes) = bytes else {
            bail!("EXCALIBUR_MASTER_KEY must be 64 hex characters (32 bytes)")
        };
        return Ok(MasterKey::new(Secret::new(bytes))?);
    }
    let path = data_dir.join("master.key");
    if path.exists() {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
        let Some(bytes) = unhex(text.trim()).filter(|b| b.len() == 32) else {
            bail!("{} must hold 64 hex characters", path.display())
        };
        return Ok(MasterKey::new(Secret::new(bytes))?);
    }
    let key = MasterKey::generate();
    let text = zeroize::Zeroizing::new(format!("{}\n", hex(key.bytes().expose())));
    write_private(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated master key");
    Ok(key)
}

/// Loads the CA: the operator's (`EXCALIBUR_CA_CERT_FILE` / `EXCALIBUR_CA_KEY_FILE`, e.g.
/// mounted from a Kubernetes Secret; installed sealed in the store so every replica signs
/// with it), else the stored one, else a new one (stored). Writes `ca.pem`.
pub(crate) async fn ca(
    store: &dyn Store,
    data_dir: &Path,
    leaf_validity: std::time::Duration,
) -> anyhow::Result<Arc<CertAuthority>> {
    let stored_cert = store.setting_get(CA_CERT_SETTING.to_owned()).await?;
    let ca = if let (Ok(cert_path), Ok(key_path)) = (
        std::env::var("EXCALIBUR_CA_CERT_FILE"),
        std::env::var("EXCALIBUR_CA_KEY_FILE"),
    ) {
        let cert = std::fs::read_to_string(&cert_path)
            .with_context(|| format!("cannot read EXCALIBUR_CA_CERT_FILE {cert_path}"))?;
        let key = Secret::new(
            std::fs::read(&key_path)
                .with_context(|| format!("cannot read EXCALIBUR_CA_KEY_FILE {key_path}"))?,
        );
        let ca = CertAuthority::load(&cert, &key)
            .context("EXCALIBUR_CA_CERT_FILE / EXCALIBUR_CA_KEY_FILE are not a usable CA")?;
        if stored_cert.is_none_or(|s| s.expose() != ca.cert_pem().as_bytes()) {
            store_ca(store, &ca, key).await?;
            tracing::info!("installed the CA from EXCALIBUR_CA_CERT_FILE");
        }
        ca
    } else if let (Some(key), Some(cert)) = (
        store.setting_get(CA_KEY_SETTING.to_owned()).await?,
        stored_cert,
    ) {
        let pem = String::from_utf8(cert.expose().to_vec())
            .context("stored CA certificate is not UTF-8")?;
        CertAuthority::load(&pem, &key)?
    } else {
        let (ca, key) = tokio::task::spawn_blocking(CertAuthority::generate).await??;
        store_ca(store, &ca, key).await?;
        tracing::info!("generated the Excalibur CA");
        ca
    };
    write_public(&data_dir.join("ca.pem"), ca.cert_pem().as_bytes())?;
    Ok(Arc::new(ca.with_leaf_validity(leaf_validity)))
}

async fn store_ca(store: &dyn Store, ca: &CertAuthority, key: Secret) -> anyhow::Result<()> {
    store.setting_put(CA_KEY_SETTING.to_owned(), key).await?;
    store
        .setting_put(
            CA_CERT_SETTING.to_owned(),
            Secret::new(ca.cert_pem().as_bytes().to_vec()),
        )
        .await?;
    Ok(())
}

/// Ensures an admin token exists: `EXCALIBUR_ADMIN_TOKEN` if set (idempotent), else a
/// generated one on first start, printed once and written to `DATA_DIR/admin-token`.
pub(crate) async fn admin_token(store: &dyn Store, data_dir: &Path) -> anyhow::Result<()> {
    let existing = store.token_list().await?;
    if let Ok(value) = std::env::var("EXCALIBUR_ADMIN_TOKEN") {
        if value.len() < 16 {
            bail!("EXCALIBUR_ADMIN_TOKEN must be at least 16 characters");
        }
        let issued = IssuedToken::from_value(&value);
        if store.token_by_hash(issued.hash.clone()).await?.is_none() {
            create(store, &issued).await?;
        }
        return Ok(());
    }
    if existing
        .iter()
        .any(|t| t.role == Role::Admin && t.revoked_at.is_none())
    {
        return Ok(());
    }
    let issued = IssuedToken::generate("xca");
    create(store, &issued).await?;
    let path = data_dir.join("admin-token");
    let mut text = issued.token.expose().to_vec();
    text.push(b'\n');
    write_private(&path, &text)?;
    // Printed once, on stdout, never through the logger.
    let token = String::from_utf8_lossy(issued.token.expose()).into_owned();
    println!(
        "Bootstrap admin token (shown once, also in {}): {token}",
        path.display()
    );
    Ok(())
}

async fn create(store: &dyn Store, issued: &IssuedToken) -> anyhow::Result<()> {
    let info = TokenInfo {
        id: TokenId::generate(),
        name: "bootstrap".to_owned(),
        role: Role::Admin,
        prefix: issued.prefix.clone(),
        created_at: Timestamp::now().to_rfc3339(),
        revoked_at: None,
    };
    store
        .token_create(info, issued.hash.clone(), "system".to_owned())
        .await?;
    Ok(())
}

/// Store setting holding the sealed workload-token signing keys.
pub(crate) const SIGNING_KEYS_SETTING: &str = "workload_signing_keys";

/// Loads the workload-token signing keys, generating the first on first start.
pub(crate) async fn signing_keys(
    store: &dyn Store,
) -> anyhow::Result<excalibur_identity::mint::SigningKeys> {
    use excalibur_identity::mint::SigningKeys;
    if let Some(secret) = store.setting_get(SIGNING_KEYS_SETTING.to_owned()).await? {
        return Ok(SigningKeys::from_secret(&secret)?);
    }
    let mut keys = SigningKeys::default();
    keys.rotate(Timestamp::now().millis())?;
    store
        .setting_put(SIGNING_KEYS_SETTING.to_owned(), keys.to_secret())
        .await?;
    tracing::info!("generated the workload-token signing key");
    Ok(keys)
}

/// The SSH gateway's host key and client key (Ed25519, generated at first start, sealed).
pub(crate) async fn ssh_keys(
    store: &dyn Store,
) -> anyhow::Result<(excalibur_ssh::PrivateKey, excalibur_ssh::PrivateKey)> {
    let mut keys = Vec::new();
    for name in ["ssh_host_key", "ssh_client_key"] {
        let pem = match store.setting_get(name.to_owned()).await? {
            Some(pem) => pem,
            None => {
                let pem = excalibur_ssh::generate_key().map_err(anyhow::Error::msg)?;
                store.setting_put(name.to_owned(), pem.clone()).await?;
                pem
            }
        };
        keys.push(
            excalibur_ssh::parse_private_key(&pem)
                .map_err(|e| anyhow::anyhow!("stored {name} is unusable: {e}"))?,
        );
    }
    let client = keys.pop().context("no ssh client key")?;
    let host = keys.pop().context("no ssh host key")?;
    Ok((host, client))
}
