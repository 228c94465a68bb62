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
    /// The `postgres` binary and its arguments, to start it again.
    launch: (PathBuf, bool, Vec<std::ffi::OsString>),
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

fn spawn(launch: &(PathBuf, bool, Vec<std::ffi::OsString>)) -> anyhow::Result<Child> {
    command(&launch.0, launch.1)
        .args(&launch.2)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start postgres")
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
        let mut args: Vec<std::ffi::OsString> = vec!["-D".into(), data.into()];
        args.extend(["-p".into(), port.to_string().into(), "-k".into()]);
        args.push(dir.path().into());
        for a in [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ] {
            args.push(a.into());
        }
        args.extend(ssl_args.iter().map(Into::into));
        let launch = (bin.join("postgres"), root, args);
        let child = spawn(&launch)?;
        let mut pg = Postgres {
            child,
            launch,
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

    /// Stops the server (fast shutdown: every connection is cut) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        // `pg_ctl` signals the postmaster itself (the child may be `runuser`).
        let (bin, root, args) = &self.launch;
        let data = args.get(1).context("no data dir")?;
        let pg_ctl = bin.with_file_name("pg_ctl");
        let status = command(&pg_ctl, *root)
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("pg_ctl stop failed: {status}");
        }
        for _ in 0..200 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("postgres did not stop in 10 s")
    }

    /// Starts it again on the same port and data; waits (bounded) until it accepts
    /// connections.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.child = spawn(&self.launch)?;
        let admin = format!("postgres://excalibur@127.0.0.1:{}/postgres", self.port);
        for _ in 0..200 {
            if ::postgres::Client::connect(&admin, ::postgres::NoTls).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("postgres did not come back in 10 s")
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
        // A fast shutdown through pg_ctl (the child may be `runuser`, which does not pass
        // signals on); the temp dir goes with us.
        if matches!(self.child.try_wait(), Ok(Some(_))) || self.stop().is_ok() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
