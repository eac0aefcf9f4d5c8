//! The write-ahead log: numbered segment files of one record per line.
//!
//! Appends are all-or-nothing: a failed write or fsync truncates the segment back to its last
//! good length, so a full disk leaves the log exactly as before; when even that fails the log
//! is poisoned and the store refuses writes until a restart (replay then drops the partial
//! tail, which was never acknowledged). Replay is strict: only a final record without its
//! newline, in the newest segment, is a torn write; any other unreadable record stops the
//! store from starting, naming file and line, because dropping it could lose an acknowledged
//! write. `repair` is the explicit, backed-up way out.

use super::View;
use super::codec::{self, RecordError};
use super::crypto::Cipher;
use super::files;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The single log file of earlier versions; read as the oldest segment.
const LEGACY: &str = "wal.jsonl";

fn segment_name(seq: u64) -> String {
    format!("wal-{seq:010}.jsonl")
}

/// Every log segment in replay order: `(sequence, path)`; the legacy log is sequence 0.
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name == LEGACY {
            out.push((0, path));
        } else if let Some(seq) = name
            .strip_prefix("wal-")
            .and_then(|r| r.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

/// One line of a file: number (from 1), byte offset, content without newline, and whether the
/// newline was there.
struct Line {
    number: usize,
    offset: u64,
    bytes: Vec<u8>,
    complete: bool,
}

fn for_each_line(path: &Path, mut f: impl FnMut(Line) -> io::Result<bool>) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        File::open(path).map_err(|e| files::named(path, "opening", e))?,
    );
    let mut offset = 0u64;
    let mut number = 0;
    loop {
        let mut bytes = Vec::new();
        let read = reader.read_until(b'\n', &mut bytes)?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        let complete = bytes.last() == Some(&b'\n');
        if complete {
            bytes.pop();
        }
        let line = Line {
            number,
            offset,
            bytes,
            complete,
        };
        offset += read as u64;
        if !f(line)? {
            return Ok(());
        }
    }
}

/// The error that stops a damaged store from starting: file, line, why, and the way out.
pub fn damaged(dir: &Path, path: &Path, line: usize, why: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}:{line}: {why}. The store refuses to start rather than silently drop a record that may \
             hold an acknowledged write. To recover (README, \"Recovering a store\"): stop the service, \
             keep a copy of {}, then run `flytesecret kube-api --data-dir {} --repair`, which backs up \
             the directory and truncates the log at the first bad record",
            path.display(),
            dir.display(),
            dir.display()
        ),
    )
}

/// The error for a record that cannot be read: a key problem is a configuration error (no
/// repair will help); anything else is damage.
pub fn unreadable(dir: &Path, path: &Path, line: usize, e: &RecordError) -> io::Error {
    if e.is_key_problem() {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}:{line}: {e}", path.display()),
        )
    } else {
        damaged(dir, path, line, e)
    }
}

/// What replay found.
pub struct Replayed {
    /// Records read in the clear (a configured key then rewrites them sealed).
    pub plain_records: usize,
    /// Records in the newest segment, and its sequence and good length.
    pub records_in_last: usize,
    pub last: Option<(u64, u64)>,
}

/// Applies every log record newer than `view.rv`.
pub fn replay(dir: &Path, cipher: Option<&Cipher>, view: &mut View) -> io::Result<Replayed> {
    let segs = segments(dir)?;
    let mut out = Replayed {
        plain_records: 0,
        records_in_last: 0,
        last: None,
    };
    let count = segs.len();
    for (i, (seq, path)) in segs.iter().enumerate() {
        let newest = i + 1 == count;
        let mut good_len = 0u64;
        let mut records = 0;
        let mut failure: Option<io::Error> = None;
        for_each_line(path, |line| {
            if !line.complete && newest {
                tracing::warn!(path = %path.display(), line = line.number,
                    "dropping a torn final log record (cut short by a crash, never acknowledged)");
                return Ok(false);
            }
            let decoded = if line.complete {
                codec::decode_record(&line.bytes, cipher)
            } else {
                Err(RecordError::Unreadable(
                    "record without its newline in an older segment".into(),
                ))
            };
            match decoded {
                Ok(rec) => {
                    if !rec.sealed {
                        out.plain_records += 1;
                    }
                    if rec.rv > view.rv {
                        super::apply(view, rec.rv, rec.mutations);
                    }
                    records += 1;
                    good_len = line.offset + line.bytes.len() as u64 + 1;
                    Ok(true)
                }
                Err(e) => {
                    failure = Some(unreadable(dir, path, line.number, &e));
                    Ok(false)
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if newest {
            out.records_in_last = records;
            out.last = Some((*seq, good_len));
        }
    }
    Ok(out)
}

/// Why an append failed, and whether the log is still usable.
pub struct AppendError {
    pub error: io::Error,
    /// The rollback failed too: the log's tail is unknown until a restart replays it.
    pub poisoned: bool,
}

/// The open newest segment, written only by the store's writer thread.
pub struct Wal {
    dir: PathBuf,
    seq: u64,
    file: File,
    /// Length up to the end of the last whole record written (a failed write is cut back
    /// to it).
    len: u64,
    pub records: usize,
    #[cfg(test)]
    pub inject: Option<super::Injection>,
}

impl Wal {
    /// Opens the log after replay: truncates a torn tail, or starts the first segment.
    pub fn open(dir: &Path, replayed: &Replayed) -> io::Result<Wal> {
        let (seq, len) = replayed.last.unwrap_or((1, 0));
        let path = dir.join(if seq == 0 {
            LEGACY.to_owned()
        } else {
            segment_name(seq)
        });
        let file = files::open_append(&path)?;
        if file.metadata()?.len() != len {
            file.set_len(len)
                .map_err(|e| files::named(&path, "truncating a torn record off", e))?;
            file.sync_all()?;
        }
        files::sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_owned(),
            seq,
            file,
            len,
            records: replayed.records_in_last,
            #[cfg(test)]
            inject: None,
        })
    }

    /// Writes whole records (each ending in a newline) without syncing them: a sync of the
    /// segment ([`Wal::path`], its own descriptor) makes them durable. A failed write is cut
    /// back to the end of the previous one.
    pub fn write(&mut self, batch: &[u8], records: usize) -> Result<(), AppendError> {
        let written = self.write_only(batch);
        self.finish(written, batch.len(), records)
    }

    fn write_only(&mut self, batch: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(inj) = &self.inject
            && inj.fail_writes
        {
            let part = inj.partial.min(batch.len());
            self.file.write_all(&batch[..part])?;
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.file.write_all(batch)
    }

    fn finish(
        &mut self,
        result: io::Result<()>,
        bytes: usize,
        records: usize,
    ) -> Result<(), AppendError> {
        match result {
            Ok(()) => {
                self.len += bytes as u64;
                self.records += records;
                Ok(())
            }
            Err(error) => {
                let poisoned = self.roll_back().is_err();
                Err(AppendError { error, poisoned })
            }
        }
    }

    /// Cuts the segment back to `len` bytes (the end of its durable records) after a failed
    /// sync; an error means the file's state is unknown.
    pub fn cut_to(&mut self, len: u64) -> io::Result<()> {
        self.len = len;
        self.roll_back()
    }

    /// Bytes written to the current segment.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The current segment's file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(if self.seq == 0 {
            LEGACY.to_owned()
        } else {
            segment_name(self.seq)
        })
    }

    /// Cuts the segment back to `len` (the end of the last whole record written) and syncs it.
    fn roll_back(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if self.inject.as_ref().is_some_and(|i| i.fail_rollback) {
            return Err(io::Error::other("injected rollback failure"));
        }
        self.file.set_len(self.len)?;
        self.file.sync_all()
    }

    /// Starts a new segment; returns the paths of every older one (a snapshot covering them
    /// makes them deletable).
    pub fn rotate(&mut self) -> io::Result<Vec<PathBuf>> {
        let next = self.seq + 1;
        let path = self.dir.join(segment_name(next));
        let file = files::open_append(&path)?;
        if let Err(e) = files::sync_dir(&self.dir) {
            // Keep the current segment the newest one: replay treats only its tail as torn.
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.file = file;
        self.seq = next;
        self.len = 0;
        self.records = 0;
        Ok(segments(&self.dir)?
            .into_iter()
            .filter(|(s, _)| *s < next)
            .map(|(_, p)| p)
            .collect())
    }
}

/// What `repair` did.
#[derive(Debug)]
pub struct Repaired {
    pub backup: PathBuf,
    /// Where the log was cut: file, line, and why; `None` when nothing was damaged.
    pub cut: Option<(PathBuf, usize, String)>,
    pub records_kept: usize,
    pub lines_dropped: usize,
    pub segments_removed: Vec<PathBuf>,
}

/// Copies every file of `dir` into a new sibling backup directory (owner-only).
fn back_up(dir: &Path) -> io::Result<PathBuf> {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("store")
        .to_owned();
    let parent = dir.parent().unwrap_or(Path::new("."));
    let mut backup = parent.join(format!("{name}.backup-{stamp}"));
    let mut n = 1;
    while backup.exists() {
        backup = parent.join(format!("{name}.backup-{stamp}-{n}"));
        n += 1;
    }
    files::prepare_dir(&backup)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let to = backup.join(path.file_name().expect("a file name"));
            let mut out = files::create(&to)?;
            io::copy(&mut File::open(&path)?, &mut out)?;
            out.sync_all()?;
        }
    }
    files::sync_dir(&backup)?;
    Ok(backup)
}

/// Backs the directory up, then truncates the log at its first bad record and removes the
/// segments after it. Records that need another key are not damage: repair refuses then.
pub fn repair(dir: &Path, cipher: Option<&Cipher>) -> io::Result<Repaired> {
    let backup = back_up(dir)?;
    let segs = segments(dir)?;
    let mut report = Repaired {
        backup,
        cut: None,
        records_kept: 0,
        lines_dropped: 0,
        segments_removed: Vec::new(),
    };
    for (_, path) in &segs {
        if report.cut.is_some() {
            let mut lines = 0;
            for_each_line(path, |_| {
                lines += 1;
                Ok(true)
            })?;
            report.lines_dropped += lines;
            fs::remove_file(path)?;
            report.segments_removed.push(path.clone());
            continue;
        }
        let mut bad: Option<(usize, u64, RecordError)> = None;
        let mut lines_after = 0;
        for_each_line(path, |line| {
            if bad.is_some() {
                lines_after += 1;
                return Ok(true);
            }
            let decoded = if line.complete {
                codec::decode_record(&line.bytes, cipher).map(|_| ())
            } else {
                Err(RecordError::Unreadable("record without its newline".into()))
            };
            match decoded {
                Ok(()) => report.records_kept += 1,
                Err(e) => bad = Some((line.number, line.offset, e)),
            }
            Ok(true)
        })?;
        if let Some((number, offset, why)) = bad {
            if why.is_key_problem() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}:{number}: {why}; repair cuts only damaged records (nothing was changed; backup in {})",
                        path.display(),
                        report.backup.display()
                    ),
                ));
            }
            let file = fs::OpenOptions::new().write(true).open(path)?;
            file.set_len(offset)?;
            file.sync_all()?;
            report.lines_dropped += 1 + lines_after;
            report.cut = Some((path.clone(), number, why.to_string()));
        }
    }
    files::sync_dir(dir)?;
    Ok(report)
}
