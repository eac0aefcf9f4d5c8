//! The write-ahead log: numbered segment files of one record per line.
//!
//! Segments are preallocated: the next one is prepared ahead, off the request path (when the
//! store opens, and by the compaction thread), as a file of written and synced zeros
//! ([`prepare_spare`], `wal.spare`), which a rotation renames into place. Appends then
//! overwrite blocks that already exist, so the file's size does not change and an fdatasync
//! writes the data without the inode. A record never contains a NUL byte, so in any segment the
//! first NUL at the start of a line ends the records, and every byte from there to the end of
//! the file must be zero (anything else there is damage). Records that outgrow the
//! preallocated size simply extend the file; when there is no room for a spare, the next
//! segment is an ordinary growing file.
//!
//! Appends are all-or-nothing: a failed write or fsync truncates the segment back to its last
//! good length (dropping its zero-filled tail: the segment grows from then on), so a full disk
//! leaves the log's records exactly as before; when even that fails the log is poisoned and the
//! store refuses writes until a restart (replay then drops the partial tail, which was never
//! acknowledged). Replay is strict: only a final record without its newline (followed by
//! nothing or by zeros), in the newest segment, is a torn write, and the log resumes at the end
//! of the record before it; any other unreadable record, or non-zero bytes after a segment's
//! zero-filled tail begins, stops the store from starting, naming file, line and offset,
//! because dropping it could lose an acknowledged write. `repair` is the explicit, backed-up
//! way out.

use super::View;
use super::codec::{self, RecordError};
use super::crypto::Cipher;
use super::files;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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
/// newline was there (a line cut short by the end of the file or by a NUL has none).
struct Line {
    number: usize,
    offset: u64,
    bytes: Vec<u8>,
    complete: bool,
}

/// How a segment's lines ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// At the end of the file (or the reader stopped early).
    Eof,
    /// In a zero-filled tail from this offset to the end of the file: the unused part of a
    /// preallocated segment.
    Zeros(u64),
    /// A NUL at `from` began what should be a zero-filled tail, but the byte at `at` is not
    /// zero; `line` is the number the tail would have as a line.
    Garbage { from: u64, at: u64, line: usize },
}

/// Calls `f` with each line of the file until it returns `false`. A line ends at a newline, at
/// the end of the file, or at a NUL byte (which no record contains): from the first NUL at a
/// line's start or inside a line on, the rest of the file must be zeros.
fn for_each_line(path: &Path, mut f: impl FnMut(Line) -> io::Result<bool>) -> io::Result<End> {
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        File::open(path).map_err(|e| files::named(path, "opening", e))?,
    );
    let mut offset = 0u64;
    let mut number = 0;
    loop {
        let mut bytes = Vec::new();
        let mut complete = false;
        let mut at_nul = false;
        loop {
            let buf = reader
                .fill_buf()
                .map_err(|e| files::named(path, "reading", e))?;
            if buf.is_empty() {
                break;
            }
            match buf.iter().position(|&b| b == b'\n' || b == 0) {
                Some(i) => {
                    bytes.extend_from_slice(&buf[..i]);
                    if buf[i] == b'\n' {
                        complete = true;
                        reader.consume(i + 1);
                    } else {
                        at_nul = true;
                        reader.consume(i);
                    }
                    break;
                }
                None => {
                    let n = buf.len();
                    bytes.extend_from_slice(buf);
                    reader.consume(n);
                }
            }
        }
        if complete || !bytes.is_empty() {
            number += 1;
            let read = bytes.len() as u64 + u64::from(complete);
            let line = Line {
                number,
                offset,
                bytes,
                complete,
            };
            offset += read;
            if !f(line)? {
                return Ok(End::Eof);
            }
        }
        if at_nul {
            let from = offset;
            loop {
                let buf = reader
                    .fill_buf()
                    .map_err(|e| files::named(path, "reading", e))?;
                if buf.is_empty() {
                    return Ok(End::Zeros(from));
                }
                if let Some(i) = buf.iter().position(|&b| b != 0) {
                    return Ok(End::Garbage {
                        from,
                        at: offset + i as u64,
                        line: number + 1,
                    });
                }
                let n = buf.len();
                offset += n as u64;
                reader.consume(n);
            }
        }
        if !complete {
            return Ok(End::Eof);
        }
    }
}

/// Why non-zero bytes after a segment's zero-filled tail began are damage.
fn garbage_why(from: u64, at: u64) -> String {
    format!(
        "the segment's records end at byte offset {from}, where its zero-filled (preallocated) \
         tail begins, but byte offset {at} is not zero"
    )
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
    /// Where the newest segment's zero-filled tail begins, if it has one.
    pub zeros_from: Option<u64>,
}

/// Applies every log record newer than `view.rv`.
pub fn replay(dir: &Path, cipher: Option<&Cipher>, view: &mut View) -> io::Result<Replayed> {
    let segs = segments(dir)?;
    let mut out = Replayed {
        plain_records: 0,
        records_in_last: 0,
        last: None,
        zeros_from: None,
    };
    let count = segs.len();
    for (i, (seq, path)) in segs.iter().enumerate() {
        let newest = i + 1 == count;
        let mut good_len = 0u64;
        let mut records = 0;
        let mut failure: Option<io::Error> = None;
        let end = for_each_line(path, |line| {
            if !line.complete && newest {
                // The last line (only zeros or nothing follow it): cut short by a crash.
                tracing::warn!(path = %path.display(), line = line.number,
                    "dropping a torn final log record (cut short by a crash, never acknowledged)");
                return Ok(true);
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
        if let End::Garbage { from, at, line } = end {
            return Err(damaged(dir, path, line, &garbage_why(from, at)));
        }
        if newest {
            out.records_in_last = records;
            out.last = Some((*seq, good_len));
            out.zeros_from = match end {
                End::Zeros(from) => Some(from),
                _ => None,
            };
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
    /// to it); the next record is written there, over the zeros of a preallocated segment.
    len: u64,
    pub records: usize,
    #[cfg(test)]
    pub inject: Option<super::Injection>,
}

impl Wal {
    /// Opens the log after replay: resumes the newest segment at the end of its last whole
    /// record (keeping a zero-filled tail that starts right there; truncating a torn record
    /// off), or starts the first segment.
    pub fn open(dir: &Path, replayed: &Replayed) -> io::Result<Wal> {
        let (seq, len) = replayed.last.unwrap_or((1, 0));
        let path = dir.join(if seq == 0 {
            LEGACY.to_owned()
        } else {
            segment_name(seq)
        });
        let file = files::open_write(&path)?;
        match replayed.zeros_from {
            Some(from) if from == len => {} // preallocated, and its records end cleanly
            Some(from) => {
                // A torn record, then zeros: zero the record too, keeping the preallocation.
                let zeros = vec![0u8; (from - len) as usize];
                file.write_all_at(&zeros, len)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| files::named(&path, "zeroing a torn record", e))?;
            }
            None if file.metadata()?.len() != len => {
                file.set_len(len)
                    .map_err(|e| files::named(&path, "truncating a torn record off", e))?;
                file.sync_all()?;
            }
            None => {}
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

    /// Writes whole records (each ending in a newline) at the end of the last one, without
    /// syncing them: a sync of the segment ([`Wal::path`], its own descriptor) makes them
    /// durable. A failed write is cut back to the end of the previous one.
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
            self.file.write_all_at(&batch[..part], self.len)?;
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.file.write_all_at(batch, self.len)
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

    /// Bytes of whole records written to the current segment.
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
    /// The file ends there: a preallocated segment loses its zero-filled tail, so nothing of
    /// the failed write can remain after the records, and grows from then on.
    fn roll_back(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if self.inject.as_ref().is_some_and(|i| i.fail_rollback) {
            return Err(io::Error::other("injected rollback failure"));
        }
        self.file.set_len(self.len)?;
        self.file.sync_all()
    }

    /// Starts a new segment: the prepared spare when there is one (already zero-filled and
    /// synced), else an empty file. Returns the paths of every older segment (a snapshot
    /// covering them makes them deletable).
    pub fn rotate(&mut self) -> io::Result<Vec<PathBuf>> {
        #[cfg(test)]
        if self.inject.as_ref().is_some_and(|i| i.fail_rotations) {
            return Err(io::Error::from_raw_os_error(24)); // EMFILE
        }
        let next = self.seq + 1;
        let path = self.dir.join(segment_name(next));
        match fs::rename(self.dir.join(SPARE), &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, "using the preallocated log segment failed; starting a growing one");
            }
        }
        let file = files::open_write(&path)?;
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

/// The next segment, zero-filled ahead of use, and the name it is filled under.
pub const SPARE: &str = "wal.spare";
const ZEROING: &str = "wal.spare.tmp";
/// Free space a spare must leave on the file system (besides its own size once more): the
/// log's records must never find the disk filled by zeros prepared for them.
const KEEP_FREE: u64 = 64 << 20;

/// What [`prepare_spare`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Spare {
    Prepared,
    /// A spare was already waiting.
    Exists,
    /// Too little free space (bytes available): the next segment will grow as it is written.
    NoRoom(u64),
    /// The store is closing.
    Stopped,
}

/// Prepares the next segment: `size` bytes of written zeros under a temporary name, synced,
/// then renamed to [`SPARE`] with the directory synced, so a spare is always whole. Never
/// leaves a partial file behind; `stop` abandons it between chunks. `fail_after` (tests) fails
/// the fill with ENOSPC after that many bytes.
pub fn prepare_spare(
    dir: &Path,
    size: u64,
    stop: &AtomicBool,
    fail_after: Option<u64>,
) -> io::Result<Spare> {
    let tmp = dir.join(ZEROING);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if dir.join(SPARE).exists() {
        return Ok(Spare::Exists);
    }
    let free = rustix::fs::statvfs(dir)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .map_err(io::Error::from)?;
    if free < size.saturating_mul(2).saturating_add(KEEP_FREE) {
        return Ok(Spare::NoRoom(free));
    }
    let filled = (|| {
        let mut file = files::create(&tmp)?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        while written < size {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let n = (size - written).min(chunk.len() as u64) as usize;
            if fail_after.is_some_and(|limit| written + n as u64 > limit) {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            file.write_all(&chunk[..n])?;
            written += n as u64;
        }
        file.sync_all()?;
        fs::rename(&tmp, dir.join(SPARE))?;
        files::sync_dir(dir)?;
        Ok(true)
    })();
    match filled {
        Ok(true) => Ok(Spare::Prepared),
        Ok(false) => {
            let _ = fs::remove_file(&tmp);
            Ok(Spare::Stopped)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(files::named(&tmp, "zero-filling the next log segment", e))
        }
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
        // A spare holds only zeros: nothing to keep.
        let spare = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(SPARE));
        if path.is_file() && !spare {
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
        let end = for_each_line(path, |line| {
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
        if let End::Garbage { from, at, line } = end {
            if bad.is_none() {
                // Every record is readable, but something follows the zero-filled tail.
                bad = Some((line, from, RecordError::Unreadable(garbage_why(from, at))));
            } else {
                lines_after += 1;
            }
        }
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
