//! File-system rules of a data directory: owner-only permissions whatever the umask (the files
//! hold secret values), and directory fsyncs so renames and new files survive a crash.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Whether a file name is one the store writes.
fn is_store_file(name: &str) -> bool {
    name == "state.json"
        || name.starts_with("snapshot.jsonl")
        || (name.starts_with("wal") && name.ends_with(".jsonl"))
        || name.starts_with("wal.spare")
}

/// Creates `dir` (and missing parents) owner-only. An existing directory that group or others
/// can reach is tightened to 0700 (its store files to 0600) with a warning when it holds only
/// store files: earlier versions created 0755/0644 under the usual umask, and refusing would
/// strand those stores. A reachable directory holding anything else (say `/tmp`, or a shared
/// folder) is refused instead: changing its permissions is not the store's call.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    let existed = dir.is_dir();
    if !existed {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| named(dir, "creating the data directory", e))?;
    }
    let mode = fs::metadata(dir)
        .map_err(|e| named(dir, "reading the data directory", e))?
        .permissions()
        .mode()
        & 0o777;
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| named(dir, "listing the data directory", e))? {
        entries.push(entry?);
    }
    if existed && mode & 0o077 != 0 {
        let foreign = entries
            .iter()
            .find(|e| !e.file_name().to_str().is_some_and(is_store_file) || !e.path().is_file());
        if let Some(other) = foreign {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the data directory {} is accessible to group or others (mode {mode:o}) and holds \
                     more than the store ({}); secrets must not live there: use a dedicated \
                     directory, or `chmod 700` this one",
                    dir.display(),
                    other.path().display()
                ),
            ));
        }
        tracing::warn!(
            path = %dir.display(),
            mode = format!("{mode:o}"),
            "the data directory was accessible to group or others; restricting it to 0700 and its files to 0600"
        );
    }
    if mode != DIR_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| named(dir, "restricting the data directory to 0700", e))?;
    }
    for entry in entries {
        let name = entry.file_name();
        let meta = entry.metadata()?;
        if meta.is_file()
            && name.to_str().is_some_and(is_store_file)
            && meta.permissions().mode() & 0o077 != 0
        {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(FILE_MODE))
                .map_err(|e| named(&entry.path(), "restricting a store file to 0600", e))?;
        }
    }
    Ok(())
}

/// Opens (creating owner-only) a file for writing at chosen offsets, keeping its contents.
pub fn open_write(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| named(path, "opening", e))?;
    restrict(&file)?;
    Ok(file)
}

/// Creates (truncating) an owner-only file for writing.
pub fn create(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| named(path, "creating", e))?;
    restrict(&file)?;
    Ok(file)
}

/// The umask may have removed bits from the requested mode but could also never add any; this
/// makes the mode exactly 0600.
fn restrict(file: &File) -> io::Result<()> {
    if file.metadata()?.permissions().mode() & 0o777 != FILE_MODE {
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An I/O error that names the path and what was being done (startup errors must say where).
pub fn named(path: &Path, doing: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}
