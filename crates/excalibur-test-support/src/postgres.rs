//! A throwaway PostgreSQL server from Debian's packages (`initdb` + `postgres` on a free
//! loopback port, trust auth, data in a temp dir), stopped on drop. As root it runs as
//! the `postgres` user (PostgreSQL refuses root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A running server.
#[derive(Debug)]
pub struct Postgres {
    child: Child,
    _dir: tempfile::TempDir,
    /// `postgres://excalibur@127.0.0.1:<port>/excalibur`.
    pub url: String,
    /// With [`Postgres::start_tls`]: the CA (PEM) that signed the server's certificate
    /// (for `127.0.0.1` and `localhost`).
    pub ca_pem: Option<String>,
    /// Its port.
    pub port: u16,
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed: run ./test.sh (it installs Debian's postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no PostgreSQL bin directory with initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn command(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Postgres {
    /// Initializes and starts a server; waits (bounded) until it accepts connections
    /// and has the `excalibur` database.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_inner(false)
    }

    /// [`Postgres::start`] with TLS on (`ssl=on`, a certificate from a test CA).
    pub fn start_tls() -> anyhow::Result<Self> {
        Self::start_inner(true)
    }

    fn start_inner(tls: bool) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let root = is_root();
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            if !status.success() {
                bail!("cannot chown the PostgreSQL temp dir");
            }
        }
        let out = command(&bin.join("initdb"), root)
            .args([
                "-A",
                "trust",
                "-U",
                "excalibur",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut ssl_args = Vec::new();
        let mut ca_pem = None;
        if tls {
            let (ca, chain, key) = crate::tls_files(&["127.0.0.1", "localhost"])?;
            let (cert_path, key_path) =
                (dir.path().join("server.crt"), dir.path().join("server.key"));
            #[allow(clippy::disallowed_methods, reason = "test files in a temp dir")]
            {
                std::fs::write(&cert_path, chain)?;
                std::fs::write(&key_path, key)?;
            }
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
            if root {
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&cert_path)
                    .arg(&key_path)
                    .status()?;
            }
            ssl_args = vec![
                "-c".to_owned(),
                "ssl=on".to_owned(),
                "-c".to_owned(),
                format!("ssl_cert_file={}", cert_path.display()),
                "-c".to_owned(),
                format!("ssl_key_file={}", key_path.display()),
            ];
            ca_pem = Some(ca);
        }
        let port = crate::free_port()?.port();
        let child = command(&bin.join("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .args(&ssl_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start postgres")?;
        let mut pg = Postgres {
            child,
            _dir: dir,
            url: format!("postgres://excalibur@127.0.0.1:{port}/excalibur"),
            port,
            ca_pem,
        };
        let admin = format!("postgres://excalibur@127.0.0.1:{port}/postgres");
        for _ in 0..200 {
            if let Ok(mut c) = ::postgres::Client::connect(&admin, ::postgres::NoTls) {
                c.batch_execute("CREATE DATABASE excalibur")?;
                return Ok(pg);
            }
            if let Ok(Some(status)) = pg.child.try_wait() {
                bail!("postgres exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("postgres did not accept connections in 10 s")
    }

    /// A fresh, empty database on this server; its URL.
    pub fn database(&self, name: &str) -> anyhow::Result<String> {
        let admin = format!("postgres://excalibur@127.0.0.1:{}/postgres", self.port);
        let mut c = ::postgres::Client::connect(&admin, ::postgres::NoTls)?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(format!(
            "postgres://excalibur@127.0.0.1:{}/{name}",
            self.port
        ))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGTERM is a smart shutdown; the temp dir goes with us.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
