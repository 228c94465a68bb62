//! An SFTP (draft-ietf-secsh-filexfer-02, what OpenSSH speaks) observer: it reads the
//! packets a relay passes, never changes them, and reports per file the path and the
//! bytes read and written when the handle closes.

use std::collections::HashMap;

/// Largest packet the observer buffers (OpenSSH's own limit is 256 KiB); a larger one
/// turns the observer off for the channel (the relay goes on).
const MAX_PACKET: usize = 1024 * 1024;

const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;

/// One file's transfer, reported when its handle closes (or the channel ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The path the client opened.
    pub path: String,
    /// Bytes the server sent (downloads).
    pub bytes_read: u64,
    /// Bytes the client wrote (uploads).
    pub bytes_written: u64,
}

#[derive(Debug, Default)]
struct Framer {
    buf: Vec<u8>,
    broken: bool,
}

impl Framer {
    /// Feeds bytes; returns the complete packets (type byte first, length stripped).
    fn feed(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        if self.broken {
            return Vec::new();
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(len) = Reader(&self.buf).u32() {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_PACKET || len == 0 {
                self.broken = true;
                self.buf = Vec::new();
                break;
            }
            if self.buf.len() < 4 + len {
                break;
            }
            let rest = self.buf.split_off(4 + len);
            let mut packet = std::mem::replace(&mut self.buf, rest);
            packet.drain(..4);
            out.push(packet);
        }
        out
    }
}

/// A cursor over an SFTP packet body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u32(&mut self) -> Option<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Some(u32::from_be_bytes(a))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

/// Watches both directions of one SFTP channel.
#[derive(Debug, Default)]
pub struct SftpObserver {
    up: Framer,
    down: Framer,
    /// OPEN request id → path, until the server answers with a handle.
    opening: HashMap<u32, String>,
    /// READ request id → handle, until the server answers with data.
    reading: HashMap<u32, Vec<u8>>,
    open: HashMap<Vec<u8>, Transfer>,
}

/// Most requests tracked at once (a client cannot grow the maps without bound).
const MAX_TRACKED: usize = 4096;

impl SftpObserver {
    /// Bytes from the client toward the server; returns transfers that completed.
    pub fn client_data(&mut self, data: &[u8]) -> Vec<Transfer> {
        let mut done = Vec::new();
        for p in self.up.feed(data) {
            let mut r = Reader(&p);
            let (Some(kind), Some(id)) = (r.u8(), r.u32()) else {
                continue;
            };
            match kind {
                FXP_OPEN => {
                    if let Some(path) = r.string()
                        && self.opening.len() < MAX_TRACKED
                    {
                        self.opening
                            .insert(id, String::from_utf8_lossy(path).into_owned());
                    }
                }
                FXP_READ => {
                    if let Some(h) = r.string()
                        && self.open.contains_key(h)
                        && self.reading.len() < MAX_TRACKED
                    {
                        self.reading.insert(id, h.to_vec());
                    }
                }
                FXP_WRITE => {
                    if let (Some(h), Some(_offset), Some(data)) = (r.string(), r.u64(), r.string())
                        && let Some(t) = self.open.get_mut(h)
                    {
                        t.bytes_written += data.len() as u64;
                    }
                }
                FXP_CLOSE => {
                    if let Some(h) = r.string()
                        && let Some(t) = self.open.remove(h)
                    {
                        done.push(t);
                    }
                }
                _ => {}
            }
        }
        done
    }

    /// Bytes from the server toward the client.
    pub fn server_data(&mut self, data: &[u8]) {
        for p in self.down.feed(data) {
            let mut r = Reader(&p);
            let (Some(kind), Some(id)) = (r.u8(), r.u32()) else {
                continue;
            };
            match kind {
                FXP_HANDLE => {
                    if let (Some(path), Some(h)) = (self.opening.remove(&id), r.string())
                        && self.open.len() < MAX_TRACKED
                    {
                        self.open.insert(
                            h.to_vec(),
                            Transfer {
                                path,
                                bytes_read: 0,
                                bytes_written: 0,
                            },
                        );
                    }
                }
                FXP_DATA => {
                    if let (Some(h), Some(data)) = (self.reading.remove(&id), r.string())
                        && let Some(t) = self.open.get_mut(&h)
                    {
                        t.bytes_read += data.len() as u64;
                    }
                }
                _ => {
                    // A status answer ends a pending open or read.
                    self.opening.remove(&id);
                    self.reading.remove(&id);
                }
            }
        }
    }

    /// Files still open when the channel ends.
    pub fn finish(&mut self) -> Vec<Transfer> {
        self.open.drain().map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, reason = "test packets are small")]
mod tests {
    use super::*;

    fn packet(kind: u8, id: u32, body: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![kind];
        p.extend_from_slice(&id.to_be_bytes());
        for b in body {
            p.extend_from_slice(b);
        }
        let mut out = (p.len() as u32).to_be_bytes().to_vec();
        out.extend(p);
        out
    }

    fn s(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn upload_and_download_are_counted_per_file_whatever_the_chunking() {
        let open =
            |id, path: &[u8]| packet(FXP_OPEN, id, &[&s(path), &[0, 0, 0, 0x1a], &[0, 0, 0, 0]]);
        // (from the client?, bytes) in protocol order; several client packets may share a write.
        let mut conversation = vec![
            (true, open(1, b"/tmp/up.bin")),
            (false, packet(FXP_HANDLE, 1, &[&s(b"h1")])),
            (
                true,
                [
                    packet(
                        FXP_WRITE,
                        2,
                        &[&s(b"h1"), &0u64.to_be_bytes(), &s(&[7u8; 3000])],
                    ),
                    packet(
                        FXP_WRITE,
                        3,
                        &[&s(b"h1"), &3000u64.to_be_bytes(), &s(&[7u8; 1000])],
                    ),
                    open(4, b"/etc/hostname"),
                ]
                .concat(),
            ),
            (false, packet(FXP_HANDLE, 4, &[&s(b"h2")])),
            (
                true,
                packet(
                    FXP_READ,
                    5,
                    &[&s(b"h2"), &0u64.to_be_bytes(), &[0, 0, 0x80, 0]],
                ),
            ),
            (false, packet(FXP_DATA, 5, &[&s(b"hello\n")])),
            (
                true,
                [
                    packet(FXP_CLOSE, 6, &[&s(b"h1")]),
                    packet(FXP_CLOSE, 7, &[&s(b"h2")]),
                ]
                .concat(),
            ),
        ];
        // A read of an unknown handle and a failed open change nothing.
        conversation.push((true, open(8, b"/nope")));
        conversation.push((false, packet(101, 8, &[&[0, 0, 0, 2]])));
        for split in [1usize, 3, 7, 1 << 20] {
            let mut o = SftpObserver::default();
            let mut done = Vec::new();
            for (from_client, bytes) in &conversation {
                for c in bytes.chunks(split) {
                    if *from_client {
                        done.extend(o.client_data(c));
                    } else {
                        o.server_data(c);
                    }
                }
            }
            assert_eq!(
                done,
                vec![
                    Transfer {
                        path: "/tmp/up.bin".into(),
                        bytes_read: 0,
                        bytes_written: 4000
                    },
                    Transfer {
                        path: "/etc/hostname".into(),
                        bytes_read: 6,
                        bytes_written: 0
                    },
                ],
                "split {split}"
            );
            assert!(o.finish().is_empty());
            assert!(o.opening.is_empty());
        }
    }

    #[test]
    fn oversized_or_garbage_packets_turn_the_observer_off() {
        let mut o = SftpObserver::default();
        assert!(o.client_data(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).is_empty());
        assert!(o.client_data(&packet(FXP_CLOSE, 1, &[&s(b"h")])).is_empty());
        let mut o = SftpObserver::default();
        assert!(o.client_data(&[0, 0, 0, 1, 9]).is_empty());
        o.server_data(&[0, 0, 0, 2, FXP_DATA]);
    }
}
