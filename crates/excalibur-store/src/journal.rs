//! The journal of flows in flight on SQLite: the write-ahead record of a request about
//! to carry a secret is one `write(2)` appended to `<database>-intents`, not a SQLite
//! transaction of its own. SQLite is one process (no cluster), so the journal is that
//! process's: it is committed to the OS when the write returns (a crash of the process
//! loses none), and synced to disk first when the batch asks (`durability = "synced"`).
//!
//! A flow stays open in the journal until the transaction that writes its completion
//! commits. When the file passes [`ROTATE_AT`], the open flows are written to a new
//! file that replaces it (rename: a crash leaves one or the other). At open, what a
//! previous process left becomes rows of `flow_intents` (those whose completion is not
//! in `flows`), so the sweep completes them as `interrupted` like any gateway's. The
//! process holds the journal's lock (`flock`) for its life, so a second one on the same
//! database cannot take its flows in flight for a dead gateway's.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use excalibur_core::api::Flow;

use crate::StoreError;

/// The journal is rewritten with only its open flows once it grows past this.
const ROTATE_AT: u64 = 1 << 20;

/// The journal beside the database at `db` (as SQLite names its `-wal`).
pub(crate) fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-intents");
    PathBuf::from(name)
}

/// Opens the journal at `path` (creating it) and takes its lock: one process per SQLite
/// database. Another process holding it (one shutting down) is waited for up to `wait`,
/// then refused. Blocking.
pub(crate) fn lock(path: &Path, wait: std::time::Duration) -> Result<File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let until = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Conflict(format!(
                    "another process uses this database: its flow journal {} is locked",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

/// An open flow: its gateway and its JSON, as the journal line holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenFlow {
    pub(crate) id: String,
    pub(crate) gateway: String,
    pub(crate) body: String,
}

/// The flows a previous process left open in the journal at `path` (none when there is
/// no journal). A line that does not parse (a write torn by a power loss) is skipped.
pub(crate) fn left_open(path: &Path) -> Result<Vec<OpenFlow>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut lines: Vec<OpenFlow> = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.map_err(io)?;
        match parse(&line) {
            Some(flow) => lines.push(flow),
            None => tracing::warn!(
                bytes = line.len(),
                "a torn line of the flow journal is skipped"
            ),
        }
    }
    // A line is idempotent: should an id come twice, its last copy is the one kept.
    let mut seen = std::collections::HashSet::new();
    let mut open: Vec<OpenFlow> = lines
        .into_iter()
        .rev()
        .filter(|f| seen.insert(f.id.clone()))
        .collect();
    open.reverse();
    Ok(open)
}

fn parse(line: &[u8]) -> Option<OpenFlow> {
    let line = std::str::from_utf8(line).ok()?;
    let (gateway, body) = line.split_once('\t')?;
    let flow: Flow = serde_json::from_str(body).ok()?;
    Some(OpenFlow {
        id: flow.id,
        gateway: gateway.to_owned(),
        body: body.to_owned(),
    })
}

/// `path` created empty (or emptied), readable by this user only, like the database.
fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// `path` opened for appends only: every write lands at the end, after a cut too.
fn appending(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new().append(true).open(path).map_err(io)
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Db(Box::new(e))
}

/// The live journal: its file (append-only) and the flows open in it.
#[derive(Debug)]
pub(crate) struct IntentJournal {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: File,
    /// Bytes in `file`: where a failed append is cut back to.
    len: u64,
    /// Open flows by id: the lines a rotation carries over.
    open: HashMap<String, OpenFlow>,
}

impl IntentJournal {
    /// Empties the journal at `path`, whose lock `file` holds ([`lock`]), and starts it
    /// (call it once what a previous process left is in the database).
    pub(crate) fn create(path: &Path, file: File) -> Result<Self, StoreError> {
        file.set_len(0).and_then(|()| file.sync_all()).map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(State {
                file,
                len: 0,
                open: HashMap::new(),
            }),
        })
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Task)
    }

    /// Writes `intents` (open flows of `gateway`) in one append, synced to disk when
    /// `synced`. On an error nothing of them is kept: the requests must not be sent.
    pub(crate) fn append(
        &self,
        gateway: &str,
        intents: &[Flow],
        synced: bool,
    ) -> Result<(), StoreError> {
        if intents.is_empty() {
            return Ok(());
        }
        let gateway = gateway.replace(['\t', '\n'], " ");
        let mut buf = Vec::with_capacity(intents.len() * 512);
        let mut lines = Vec::with_capacity(intents.len());
        for f in intents {
            let body = serde_json::to_string(f).map_err(StoreError::Corrupt)?;
            buf.extend_from_slice(gateway.as_bytes());
            buf.push(b'\t');
            buf.extend_from_slice(body.as_bytes());
            buf.push(b'\n');
            lines.push(OpenFlow {
                id: f.id.clone(),
                gateway: gateway.clone(),
                body,
            });
        }
        let mut state = self.state()?;
        let written = state.file.write_all(&buf).and_then(|()| {
            if synced {
                state.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Cut a partial line off, so that the next append starts a line of its own.
            let len = state.len;
            if let Err(cut) = state.file.set_len(len) {
                tracing::error!(error = %cut, "cannot cut a failed append off the flow journal");
            }
            return Err(io(e));
        }
        state.len += buf.len() as u64;
        for line in lines {
            state.open.insert(line.id.clone(), line);
        }
        Ok(())
    }

    /// Forgets the flows whose completions (`ids`) are committed, and rewrites the
    /// journal with only the open ones once it is large. It cannot fail: it runs after
    /// the commit, which must not be retried (its events would be chained twice); a
    /// rotation that fails leaves the old journal (larger, still right) for the next.
    pub(crate) fn completed<'a>(&self, ids: impl IntoIterator<Item = &'a str>, synced: bool) {
        // The state is whole between any two statements: a panic elsewhere left it so.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in ids {
            state.open.remove(id);
        }
        if state.len >= ROTATE_AT
            && let Err(e) = self.rotate(&mut state, synced)
        {
            tracing::warn!(error = %excalibur_core::ErrorChain(&e), "rewriting the flow journal failed; it keeps growing until it succeeds");
        }
    }

    /// The gateways with flows open here.
    pub(crate) fn gateways(&self) -> Result<Vec<String>, StoreError> {
        let state = self.state()?;
        let mut g: Vec<String> = state.open.values().map(|f| f.gateway.clone()).collect();
        g.sort();
        g.dedup();
        Ok(g)
    }

    /// The flows `gateway` has open here.
    pub(crate) fn open_of(&self, gateway: &str) -> Result<Vec<OpenFlow>, StoreError> {
        let state = self.state()?;
        let mut open: Vec<OpenFlow> = state
            .open
            .values()
            .filter(|f| f.gateway == gateway)
            .cloned()
            .collect();
        open.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(open)
    }

    /// Writes the open flows to a new file and renames it over the journal; on an error
    /// the old journal stays (larger, still right).
    fn rotate(&self, state: &mut State, synced: bool) -> Result<(), StoreError> {
        let mut next = self.path.as_os_str().to_owned();
        next.push(".next");
        let next = PathBuf::from(next);
        let mut buf = Vec::new();
        for f in state.open.values() {
            buf.extend_from_slice(f.gateway.as_bytes());
            buf.push(b'\t');
            buf.extend_from_slice(f.body.as_bytes());
            buf.push(b'\n');
        }
        let mut file = create_private(&next).map_err(io)?;
        file.write_all(&buf).map_err(io)?;
        if synced {
            file.sync_all().map_err(io)?;
        }
        let file = appending(&next)?;
        // The lock moves to the new file before its name does: no moment without it.
        file.try_lock().map_err(|e| io(e.into()))?;
        std::fs::rename(&next, &self.path).map_err(io)?;
        if synced && let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        state.file = file;
        state.len = buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::flow;

    const WAIT: std::time::Duration = std::time::Duration::from_millis(100);

    fn ids(open: &[OpenFlow]) -> Vec<&str> {
        open.iter().map(|f| f.id.as_str()).collect()
    }

    /// What was appended and not completed is what a restart finds, whether or not the
    /// journal was rotated meanwhile; a torn last line is skipped.
    #[test]
    fn a_restart_finds_the_flows_left_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("excalibur.db"));
        let journal = IntentJournal::create(&path, lock(&path, WAIT).unwrap()).unwrap();
        journal
            .append("gw_1", &[flow("fl_a"), flow("fl_b")], false)
            .unwrap();
        journal.completed(["fl_a"], false);
        assert_eq!(ids(&left_open(&path).unwrap()), ["fl_a", "fl_b"]);
        assert_eq!(journal.gateways().unwrap(), ["gw_1"]);
        assert_eq!(ids(&journal.open_of("gw_1").unwrap()), ["fl_b"]);

        // Past the rotation size the file is rewritten with the open flow alone.
        let len = || std::fs::metadata(&path).unwrap().len();
        let mut n = 0;
        let grown = loop {
            let before = len();
            let id = format!("fl_x{n}");
            journal.append("gw_1", &[flow(&id)], n % 2 == 0).unwrap();
            journal.completed([id.as_str()], n % 2 == 0);
            if len() < before {
                break before;
            }
            n += 1;
            assert!(n < 20_000, "the journal was never rotated");
        };
        assert!(grown > ROTATE_AT - 1024, "rotated at {grown} bytes");
        assert!(len() < 1024, "{} bytes after the rotation", len());
        assert_eq!(ids(&left_open(&path).unwrap()), ["fl_b"]);
        journal.append("gw_1", &[flow("fl_c")], false).unwrap();
        let left = left_open(&path).unwrap();
        assert_eq!(ids(&left), ["fl_b", "fl_c"]);
        assert_eq!(left[0].gateway, "gw_1");
        assert_eq!(
            serde_json::from_str::<Flow>(&left[1].body).unwrap().id,
            "fl_c"
        );

        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"gw_1\t{\"id\": \"fl_torn\", \"ts").unwrap();
        assert_eq!(ids(&left_open(&path).unwrap()), ["fl_b", "fl_c"]);
        assert!(left_open(&dir.path().join("none")).unwrap().is_empty());
    }

    /// One process per database: a second one cannot take the journal while the first
    /// holds it, rotated or not, and can once it is gone.
    #[test]
    fn a_second_process_is_refused_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("excalibur.db"));
        let journal = IntentJournal::create(&path, lock(&path, WAIT).unwrap()).unwrap();
        let refused = lock(&path, WAIT).unwrap_err().to_string();
        assert!(refused.contains("is locked"), "{refused}");
        {
            let mut state = journal.state().unwrap();
            journal.rotate(&mut state, false).unwrap();
        }
        assert!(
            lock(&path, WAIT).is_err(),
            "the rotated journal is not locked"
        );
        drop(journal);
        assert!(lock(&path, WAIT).is_ok());
    }
}
