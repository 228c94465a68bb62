//! One module per resource: each turns its verbs into typed API requests (the DTOs of
//! `excalibur_core::api`, serialized by serde) and prints the answer with [`Ctx::show`].

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use excalibur_ctl::cli::DocumentCmd;
use excalibur_ctl::client::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::table;

pub(crate) mod access;
pub(crate) mod crypto;
pub(crate) mod observe;
pub(crate) mod ssh;
pub(crate) mod vault;
pub(crate) mod webhooks;
pub(crate) mod workloads;

/// What every verb needs: the API client and the output format.
pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) json: bool,
}

/// Table columns: `(header, JSON field)`.
pub(crate) type Columns = &'static [(&'static str, &'static str)];

impl Ctx {
    /// Prints an answer: a table of `cols`, or the JSON itself with `--json`.
    pub(crate) fn show(&self, v: &Value, cols: Columns) {
        if self.json {
            self.print_json(v);
        } else {
            print!("{}", table::render(v, cols));
        }
    }

    pub(crate) fn print_json(&self, v: &Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }

    /// `GET` a collection and show it.
    pub(crate) async fn list(&self, path: &[&str], cols: Columns) -> anyhow::Result<ExitCode> {
        self.show(&self.client.get(path, &[]).await?, cols);
        Ok(ExitCode::SUCCESS)
    }

    /// `POST` a typed request and show what it created.
    pub(crate) async fn create<T: Serialize>(
        &self,
        path: &[&str],
        body: &T,
        cols: Columns,
    ) -> anyhow::Result<ExitCode> {
        self.show(&self.client.post(path, body).await?, cols);
        Ok(ExitCode::SUCCESS)
    }

    /// `DELETE` one object and say so.
    pub(crate) async fn delete(&self, path: &[&str], id: &str) -> anyhow::Result<ExitCode> {
        self.client.delete(path).await?;
        println!("deleted {id}");
        Ok(ExitCode::SUCCESS)
    }

    /// `add|list|delete` for objects configured from a JSON document (crypto mappings, SSH
    /// routes) at the collection `base`. The document is read as the API's request type
    /// `T` first, so a misspelt field fails here, before anything is sent.
    pub(crate) async fn document<T: DeserializeOwned + Serialize>(
        &self,
        base: &[&str],
        cols: Columns,
        cmd: DocumentCmd,
    ) -> anyhow::Result<ExitCode> {
        match cmd {
            DocumentCmd::Add { file } => {
                let body: T = read_document(file)?;
                self.create(base, &body, cols).await
            }
            DocumentCmd::List => self.list(base, cols).await,
            DocumentCmd::Delete { id } => self.delete(&[base, &[id.as_str()]].concat(), &id).await,
        }
    }
}

/// Reads a JSON document from a file (or `-` for stdin) as the request type `T`.
pub(crate) fn read_document<T: DeserializeOwned>(file: PathBuf) -> anyhow::Result<T> {
    let text = read_value(None, Some(file))?;
    let doc: Value = serde_json::from_str(&text).context("the document is not JSON")?;
    serde_json::from_value(doc).context("the document does not fit the API's request")
}

/// A value given on the command line, or read from a file (`-`: stdin), without its one
/// trailing newline.
pub(crate) fn read_value(value: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    if let Some(v) = value {
        return Ok(v);
    }
    let Some(path) = file else {
        bail!("give --value or --value-file")
    };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the value from stdin")?;
    } else {
        text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// A field of an answer, as text.
pub(crate) fn field(v: &Value, name: &str) -> String {
    v.get(name).map(Value::to_string).unwrap_or_default()
}
