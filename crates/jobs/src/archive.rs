//! Volume archives: a directory as tar, compressed with zstd, and back. Blocking code: it
//! runs in `dockhand agent` beside the volume, or on a blocking thread.
//!
//! The tar keeps numeric owners, modes, mtimes, symlinks (never followed), hard links (as
//! links to the first path seen), empty directories and FIFOs; device nodes are archived but
//! come back as empty files (a restore runs without `CAP_MKNOD`); sockets cannot be
//! archived and are counted as skipped. Paths are relative to the volume's root, which
//! is the first entry (`./`), so `tar -C <volume> -xpf -` restores by hand.
//!
//! Restore extracts into a staging directory inside the volume first; only when the whole
//! archive is out does it replace the old contents, so a broken stream leaves them as
//! they were.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The staging directory inside a volume while it is restored.
pub const STAGING: &str = ".dockhand-restore";

/// What can go wrong with an archive. Every message names the path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Reading or writing a path failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The stream is not a valid archive.
    #[error("the archive is damaged: {0}")]
    Damaged(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io { path: path.to_owned(), source }
}

/// What [`pack`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackStats {
    /// Entries in the tar.
    pub entries: u64,
    /// Bytes of file content read.
    pub bytes: u64,
    /// Paths left out (sockets) or that changed size while being read.
    pub warnings: Vec<String>,
}

/// The bytes of file content under `dir` (what [`pack`] will read: a hard-linked file
/// once), for progress.
pub fn content_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino()))) {
                total += meta.len();
            }
        }
    }
    total
}

/// Writes `dir` as a zstd-compressed tar to `out`, in bounded memory; `read` counts the
/// bytes of file content read so far, for progress.
pub fn pack(dir: &Path, out: impl Write, level: i32, read: &AtomicU64) -> Result<PackStats, ArchiveError> {
    let mut encoder = zstd::Encoder::new(out, level).map_err(io_err(dir))?;
    encoder.include_checksum(true).map_err(io_err(dir))?;
    // Compression is the work of a backup: zstd's own workers take the node's cores (up
    // to 4), while this thread reads the files.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    encoder.multithread(u32::try_from(workers).unwrap_or(1)).map_err(io_err(dir))?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    let mut stats = PackStats::default();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut state = Walk { stats: &mut stats, links: &mut links, read };
    let root = fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if !root.is_dir() {
        return Err(ArchiveError::Io {
            path: dir.to_owned(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    append(&mut builder, dir, Path::new("./"), &root, &mut state)?;
    walk(&mut builder, dir, Path::new(""), &mut state)?;
    let encoder = builder.into_inner().map_err(io_err(dir))?;
    encoder.finish().map_err(io_err(dir))?.flush().map_err(io_err(dir))?;
    Ok(stats)
}

/// What a walk carries along: the stats, the hard links seen, the progress counter.
struct Walk<'a> {
    stats: &'a mut PackStats,
    links: &'a mut HashMap<(u64, u64), PathBuf>,
    read: &'a AtomicU64,
}

fn walk<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    relative: &Path,
    state: &mut Walk<'_>,
) -> Result<(), ArchiveError> {
    let dir = root.join(relative);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err(&dir))?;
    names.sort();
    for name in names {
        let rel = relative.join(&name);
        if rel.as_os_str() == STAGING {
            continue;
        }
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        append(builder, &path, &rel, &meta, state)?;
        if meta.is_dir() {
            walk(builder, root, &rel, state)?;
        }
    }
    Ok(())
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    rel: &Path,
    meta: &fs::Metadata,
    state: &mut Walk<'_>,
) -> Result<(), ArchiveError> {
    let Walk { stats, links, read } = state;
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_socket() {
        stats.warnings.push(format!("{}: a socket cannot be archived; left out", rel.display()));
        return Ok(());
    }
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    let err = io_err(path);
    if kind.is_file() && meta.nlink() > 1 {
        if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            builder.append_link(&mut header, rel, first).map_err(err)?;
            stats.entries += 1;
            return Ok(());
        }
        links.insert((meta.dev(), meta.ino()), rel.to_owned());
    }
    if kind.is_symlink() {
        let target = fs::read_link(path).map_err(io_err(path))?;
        header.set_size(0);
        builder.append_link(&mut header, rel, &target).map_err(err)?;
    } else if kind.is_file() {
        let file = fs::File::open(path).map_err(io_err(path))?;
        let size = meta.len();
        let mut reader = Exact { inner: file.take(size), remaining: size, short: false, read };
        builder.append_data(&mut header, rel, &mut reader).map_err(err)?;
        if reader.short {
            stats.warnings.push(format!("{}: shrank while it was read; the rest is zeros", rel.display()));
        }
        stats.bytes += size;
    } else {
        header.set_size(0);
        builder.append_data(&mut header, rel, io::empty()).map_err(err)?;
    }
    stats.entries += 1;
    Ok(())
}

/// A file read as exactly the size its header announced: a file that shrinks while it is
/// read is padded with zeros (and reported), one that grows is cut at the size.
struct Exact<'a, R> {
    inner: R,
    remaining: u64,
    short: bool,
    read: &'a AtomicU64,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        let n = if n == 0 {
            self.short = true;
            let pad = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            buf[..pad].fill(0);
            pad
        } else {
            n
        };
        self.remaining -= n as u64;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What [`unpack`] or [`verify`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnpackStats {
    /// Entries in the tar.
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// What [`convert_foreign`] found in an archive of the seed's tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ForeignStats {
    /// Entries of the volume, re-packed.
    pub entries: u64,
    /// Bytes of their file content.
    pub bytes: u64,
    /// Entries outside `backup/<volume>/`, left out.
    pub skipped: u64,
}

/// Re-packs an archive of the seed's tool (offen/docker-volume-backup: a gzip tar with the
/// volume under `backup/<volume>/`) as dockhand's own: a zstd tar of that volume alone,
/// paths relative to its root, the root as `./` with its owner, mode and mtime. Hard links
/// inside it follow; entries outside it are left out and counted. An archive with nothing
/// of `volume` is an error naming what it holds.
pub(crate) fn convert_foreign(
    input: impl Read,
    volume: &str,
    out: impl Write,
    level: i32,
) -> Result<ForeignStats, ArchiveError> {
    let damaged = |e: io::Error| ArchiveError::Damaged(e.to_string());
    let written = |e: io::Error| ArchiveError::Io { path: PathBuf::from("the re-packed archive"), source: e };
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(input));
    let encoder = zstd::Encoder::new(out, level).map_err(written)?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    let prefix = Path::new("backup").join(volume);
    // Under `backup/<volume>/`, relative to it; a path that climbs (`..`) is never inside.
    let inside = |path: &Path| -> Option<PathBuf> {
        if path.components().any(|c| c == std::path::Component::ParentDir) {
            return None;
        }
        let clean: PathBuf =
            path.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
        clean.strip_prefix(&prefix).ok().map(Path::to_path_buf)
    };
    let (mut stats, mut tops) = (ForeignStats::default(), std::collections::BTreeSet::new());
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            continue;
        }
        let path = entry.path().map_err(damaged)?.into_owned();
        let Some(rel) = inside(&path) else {
            if let Some(std::path::Component::Normal(top)) = path.components().nth(1) {
                tops.insert(top.to_string_lossy().into_owned());
            }
            stats.skipped += 1;
            continue;
        };
        let rel = if rel.as_os_str().is_empty() { PathBuf::from("./") } else { rel };
        let mut header = entry.header().clone();
        match kind {
            tar::EntryType::Link => {
                let target = entry.link_name().map_err(damaged)?.unwrap_or_default().into_owned();
                let Some(target) = inside(&target) else {
                    stats.skipped += 1;
                    continue;
                };
                builder.append_link(&mut header, &rel, &target).map_err(written)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name().map_err(damaged)?.unwrap_or_default().into_owned();
                builder.append_link(&mut header, &rel, &target).map_err(written)?;
            }
            _ => {
                let size = header.size().map_err(damaged)?;
                builder.append_data(&mut header, &rel, &mut entry).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof { damaged(e) } else { written(e) }
                })?;
                stats.bytes += size;
            }
        }
        stats.entries += 1;
    }
    if stats.entries == 0 {
        let held = if tops.is_empty() {
            "nothing under backup/".to_owned()
        } else {
            tops.into_iter().collect::<Vec<_>>().join(", ")
        };
        return Err(ArchiveError::Damaged(format!(
            "no entry under backup/{volume}/ (the archive holds: {held})"
        )));
    }
    builder.into_inner().map_err(written)?.finish().map_err(written)?;
    Ok(stats)
}

/// Reads a whole zstd-compressed tar, checking its frames and entries, writing nothing.
pub fn verify(input: impl Read) -> Result<UnpackStats, ArchiveError> {
    let decoder = zstd::Decoder::new(input).map_err(|e| ArchiveError::Damaged(e.to_string()))?;
    let mut archive = tar::Archive::new(decoder);
    let mut stats = UnpackStats::default();
    let damaged = |e: io::Error| ArchiveError::Damaged(e.to_string());
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        stats.bytes += io::copy(&mut entry, &mut io::sink()).map_err(damaged)?;
        stats.entries += 1;
    }
    drain(archive.into_inner()).map_err(damaged)?;
    Ok(stats)
}

/// Reads a zstd stream to its end after the tar's end-of-archive blocks: zstd checks the
/// frame's checksum only there, so a flipped byte that still decodes (inside a file's
/// data, which tar does not checksum) is caught before anything counts as verified.
fn drain(mut decoder: impl Read) -> io::Result<u64> {
    io::copy(&mut decoder, &mut io::sink())
}

/// Replaces the contents of `dir` with the archive read from `input`: extracted into
/// [`STAGING`] first, then swapped in, so the old contents stay until the archive is
/// wholly out. Owners, modes and mtimes are restored (numeric owners need root).
pub fn unpack(input: impl Read, dir: &Path) -> Result<UnpackStats, ArchiveError> {
    let staging = dir.join(STAGING);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    // Making and removing the staging directory touches the volume root's mtime: a failed
    // restore puts it back, so the volume is left exactly as it was.
    let root_mtime = fs::metadata(dir).and_then(|m| m.modified()).map_err(io_err(dir))?;
    fs::create_dir(&staging).map_err(io_err(&staging))?;
    let result = extract(input, &staging);
    let (stats, root) = match result {
        Ok(extracted) => extracted,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            let _ =
                fs::File::open(dir).and_then(|d| d.set_times(fs::FileTimes::new().set_modified(root_mtime)));
            return Err(e);
        }
    };
    // The archive is out: the old contents go, the new move up.
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path == staging {
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) }
            .map_err(io_err(&path))?;
    }
    for entry in fs::read_dir(&staging).map_err(io_err(&staging))? {
        let from = entry.map_err(io_err(&staging))?.path();
        let Some(name) = from.file_name() else { continue };
        fs::rename(&from, dir.join(name)).map_err(io_err(&from))?;
    }
    // The volume's root takes the archive root's owner, mode and mtime.
    fs::remove_dir(&staging).map_err(io_err(&staging))?;
    root.apply(dir)?;
    Ok(stats)
}

/// The owner, mode and mtime a directory entry carries.
#[derive(Debug, Clone, Copy, Default)]
struct DirMeta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
}

impl DirMeta {
    fn of(header: &tar::Header) -> Self {
        Self {
            uid: header.uid().ok().and_then(|u| u32::try_from(u).ok()).unwrap_or(0),
            gid: header.gid().ok().and_then(|g| u32::try_from(g).ok()).unwrap_or(0),
            mode: header.mode().unwrap_or(0o755),
            mtime: header.mtime().unwrap_or(0),
        }
    }

    fn apply(&self, dir: &Path) -> Result<(), ArchiveError> {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid)).map_err(io_err(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(self.mode & 0o7777)).map_err(io_err(dir))?;
        self.apply_mtime(dir)
    }

    fn apply_mtime(&self, dir: &Path) -> Result<(), ArchiveError> {
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.mtime);
        fs::File::open(dir).and_then(|f| f.set_modified(mtime)).map_err(io_err(dir))
    }
}

/// A FIFO at `path` (a path of plain components under the staging directory) with `meta`'s
/// owner, mode and mtime; never opened, so nothing blocks.
fn make_fifo(path: &Path, meta: &DirMeta) -> Result<(), ArchiveError> {
    use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, mknodat, utimensat};
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mode = Mode::from_raw_mode(meta.mode & 0o7777);
    mknodat(CWD, path, FileType::Fifo, mode, 0).map_err(|e| io_err(path)(e.into()))?;
    std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid)).map_err(io_err(path))?;
    // mknod applied the umask: the mode as archived.
    rustix::fs::chmodat(CWD, path, mode, AtFlags::empty()).map_err(|e| io_err(path)(e.into()))?;
    let at = Timespec { tv_sec: i64::try_from(meta.mtime).unwrap_or(i64::MAX), tv_nsec: 0 };
    utimensat(CWD, path, &Timestamps { last_access: at, last_modification: at }, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err(path)(e.into()))
}

/// Extracts into `staging`; returns what was read and the archive root's metadata.
fn extract(input: impl Read, staging: &Path) -> Result<(UnpackStats, DirMeta), ArchiveError> {
    let decoder = zstd::Decoder::new(input).map_err(|e| ArchiveError::Damaged(e.to_string()))?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let damaged = |e: io::Error| ArchiveError::Damaged(e.to_string());
    let unpack_err = |e: io::Error| ArchiveError::Io { path: staging.to_owned(), source: e };
    let mut stats = UnpackStats::default();
    let mut root = DirMeta { mode: 0o755, ..DirMeta::default() };
    let mut dirs = Vec::new();
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        stats.entries += 1;
        stats.bytes += entry.header().size().unwrap_or(0);
        let path: PathBuf = entry
            .path()
            .map_err(damaged)?
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        if entry.header().entry_type() == tar::EntryType::Directory {
            let meta = DirMeta::of(entry.header());
            if path.as_os_str().is_empty() {
                root = meta;
                continue;
            }
            // Created now (empty directories too); its mtime is set once its contents are in.
            entry.unpack_in(staging).map_err(unpack_err)?;
            dirs.push((staging.join(&path), meta));
            continue;
        }
        // tar writes a FIFO back as an empty file: made here, with its owner, mode and mtime.
        if entry.header().entry_type() == tar::EntryType::Fifo {
            if path.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
                make_fifo(&staging.join(&path), &DirMeta::of(entry.header()))?;
            }
            continue;
        }
        entry.unpack_in(staging).map_err(unpack_err)?;
    }
    drain(archive.into_inner()).map_err(damaged)?;
    for (dir, meta) in dirs.iter().rev() {
        meta.apply_mtime(dir)?;
    }
    Ok((stats, root))
}

/// The zstd level when the target sets none.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

#[cfg(test)]
mod tests;
