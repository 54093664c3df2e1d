//! Tests of volume archives: round trips, owners, links, hostile entries, the seed's archives.

use super::*;
use std::os::unix::fs::{PermissionsExt, symlink};

/// Every path under `dir`: type, mode, owner, size, mtime, link target and content.
pub(crate) fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn go(root: &Path, rel: &Path, out: &mut Vec<String>) {
        let path = root.join(rel);
        let meta = fs::symlink_metadata(&path).unwrap();
        let target = fs::read_link(&path).map(|t| t.display().to_string()).unwrap_or_default();
        let content = if meta.is_file() { fs::read(&path).unwrap() } else { Vec::new() };
        let mtime = if meta.is_symlink() { 0 } else { meta.mtime() };
        out.push(format!(
            "{} {:o} {}:{} {} {mtime} {target} {:?} links={}",
            rel.display(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.len(),
            &content[..content.len().min(16)],
            meta.nlink()
        ));
        if meta.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&path).unwrap().map(|e| e.unwrap().file_name()).collect();
            names.sort();
            for name in names {
                go(root, &rel.join(name), out);
            }
        }
    }
    go(dir, Path::new(""), &mut out);
    out
}

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("sub/deeper/data.bin"), vec![7u8; 100_000]).unwrap();
    fs::write(dir.join("name with spaces – ü.txt"), "utf-8 name").unwrap();
    fs::hard_link(dir.join("sub/deeper/data.bin"), dir.join("hardlink.bin")).unwrap();
    symlink("sub/deeper/data.bin", dir.join("link")).unwrap();
    symlink("/etc/nowhere", dir.join("dangling")).unwrap();
    fs::set_permissions(dir.join("name with spaces – ü.txt"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::set_permissions(dir.join("empty"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(dir.join("sub/deeper/data.bin"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::chown(dir.join("empty"), Some(999), Some(999)).unwrap();
    std::os::unix::fs::lchown(dir.join("link"), Some(42), Some(43)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fs::File::open(dir.join("sub/deeper")).unwrap().set_modified(old).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o750)).unwrap();
    // A FIFO comes back a FIFO, not an empty file (the review's note on archive.rs).
    make_fifo(&dir.join("sub/pipe"), &DirMeta { uid: 7, gid: 8, mode: 0o640, mtime: 1_000_000 }).unwrap();
}

#[test]
fn a_tree_comes_back_exactly() {
    // Owners other than root need root to restore: this test runs as root here and in CI.
    assert!(rustix_is_root(), "the archive tests restore numeric owners and need root");
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let mut packed = Vec::new();
    let read = AtomicU64::new(0);
    let stats = pack(src.path(), &mut packed, 3, &read).unwrap();
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    assert_eq!(read.load(Ordering::Relaxed), content_size(src.path()));
    verify(packed.as_slice()).unwrap();

    let dst = tempfile::tempdir().unwrap();
    fs::write(dst.path().join("stale"), "must go").unwrap();
    fs::create_dir(dst.path().join("empty")).unwrap();
    unpack(packed.as_slice(), dst.path()).unwrap();
    assert_eq!(listing(src.path()), listing(dst.path()));
}

#[test]
fn a_damaged_archive_is_refused_and_leaves_the_volume_alone() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), vec![1u8; 300_000]).unwrap();
    let mut packed = Vec::new();
    pack(src.path(), &mut packed, 1, &AtomicU64::new(0)).unwrap();
    let mid = packed.len() / 2;
    // The frame checksum's last byte: read only after tar's end-of-archive blocks.
    let last = packed.len() - 1;
    packed[last] ^= 0xff;
    assert!(matches!(verify(packed.as_slice()), Err(ArchiveError::Damaged(_))));

    let dst = tempfile::tempdir().unwrap();
    fs::write(dst.path().join("keep"), "old").unwrap();
    let before = listing(dst.path());
    assert!(unpack(packed.as_slice(), dst.path()).is_err());
    assert!(unpack(&packed[..mid], dst.path()).is_err(), "a cut stream fails");
    assert_eq!(before, listing(dst.path()), "the old contents stay");
}

#[test]
fn an_archive_cannot_write_outside_the_volume() {
    // A hand-made tar whose entries climb out (`../`), are absolute, or go through a
    // symlink that points out.
    let outside = tempfile::tempdir().unwrap();
    let mut raw = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut raw);
        let mut entry = |name: &str, kind: tar::EntryType, link: Option<&str>| {
            let mut header = tar::Header::new_gnu();
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_entry_type(kind);
            header.set_mode(0o644);
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            let data: &[u8] = if kind == tar::EntryType::Regular { b"pwned" } else { b"" };
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        };
        let escape = format!("{}/escaped", outside.path().display());
        entry("../escaped", tar::EntryType::Regular, None);
        entry(&escape, tar::EntryType::Regular, None);
        entry("out", tar::EntryType::Symlink, Some(outside.path().to_str().unwrap()));
        entry("out/through-link", tar::EntryType::Regular, None);
        builder.finish().unwrap();
    }
    let compressed = zstd::encode_all(raw.as_slice(), 1).unwrap();
    let volume = tempfile::tempdir().unwrap();
    let dir = volume.path().join("v");
    fs::create_dir(&dir).unwrap();
    let _ = unpack(compressed.as_slice(), &dir);
    let left: Vec<_> = fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "written outside the volume: {left:?}");
    assert!(!volume.path().join("escaped").exists());
}

#[test]
fn sockets_are_reported_not_archived() {
    let src = tempfile::tempdir().unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.path().join("s.sock")).unwrap();
    let stats = pack(src.path(), io::sink(), 1, &AtomicU64::new(0)).unwrap();
    assert_eq!(stats.warnings.len(), 1, "{:?}", stats.warnings);
    assert!(stats.warnings[0].contains("s.sock"));
}

fn rustix_is_root() -> bool {
    dockhand_host::procfs::effective_uid() == Some(0)
}

/// A gzip tar as the seed's tool writes it: the volume `data` under `backup/data/`,
/// another volume beside it, and an entry that climbs out.
fn seed_archive() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let dir = |tar: &mut tar::Builder<_>, path: &str, mode: u32, uid: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_000_000_000);
        h.set_size(0);
        tar.append_data(&mut h, path, io::empty()).unwrap();
    };
    dir(&mut tar, "backup/", 0o755, 0);
    dir(&mut tar, "backup/data/", 0o750, 70);
    dir(&mut tar, "backup/data/sub/", 0o700, 0);
    let file = |tar: &mut tar::Builder<_>, path: &str, body: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o640);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1_100_000_000);
        h.set_size(body.len() as u64);
        tar.append_data(&mut h, path, body).unwrap();
    };
    file(&mut tar, "backup/data/a.txt", "grüße\n".as_bytes());
    file(&mut tar, "backup/other/x", b"not ours");
    let plain = |kind| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_100_000_000);
        h.set_size(0);
        h
    };
    let mut link = plain(tar::EntryType::Link);
    tar.append_link(&mut link, "backup/data/sub/hard", "backup/data/a.txt").unwrap();
    let mut sym = plain(tar::EntryType::Symlink);
    tar.append_link(&mut sym, "backup/data/link", "a.txt").unwrap();
    // A name that climbs out, written raw (the builder refuses it).
    let mut climb = tar::Header::new_old();
    climb.as_old_mut().name[..30].copy_from_slice(b"backup/data/../../etc/pwned\0\0\0");
    climb.set_mode(0o644);
    climb.set_size(4);
    climb.set_cksum();
    tar.append(&climb, &b"evil"[..]).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

#[test]
fn a_seed_archive_restores_as_its_volume_alone() {
    let mut zst = Vec::new();
    let stats = convert_foreign(seed_archive().as_slice(), "data", &mut zst, 3).unwrap();
    assert_eq!(
        stats,
        ForeignStats { entries: 5, bytes: 8, skipped: 3 },
        "the root, sub, a file, two links; backup/, other/x and the climb left out"
    );
    let out = tempfile::tempdir().unwrap();
    let unpacked = unpack(zst.as_slice(), out.path()).unwrap();
    assert_eq!(unpacked.entries, 5);
    let root = fs::metadata(out.path()).unwrap();
    assert_eq!((root.mode() & 0o7777, root.uid(), root.mtime()), (0o750, 70, 1_000_000_000));
    let a = fs::metadata(out.path().join("a.txt")).unwrap();
    assert_eq!((a.mode() & 0o7777, a.uid(), a.gid(), a.nlink()), (0o640, 1234, 5678, 2));
    assert_eq!(fs::read_to_string(out.path().join("sub/hard")).unwrap(), "grüße\n");
    assert_eq!(fs::read_link(out.path().join("link")).unwrap(), Path::new("a.txt"));
    assert!(!out.path().join("x").exists() && !out.path().join("other").exists());
    assert!(!out.path().parent().unwrap().join("etc/pwned").exists());
}

#[test]
fn a_seed_archive_without_the_volume_or_cut_short_is_refused() {
    let err = convert_foreign(seed_archive().as_slice(), "nope", &mut Vec::new(), 3).unwrap_err();
    assert!(
        err.to_string().contains("no entry under backup/nope/") && err.to_string().contains("data, other"),
        "{err}"
    );
    let whole = seed_archive();
    let err = convert_foreign(&whole[..whole.len() / 2], "data", &mut Vec::new(), 3).unwrap_err();
    assert!(matches!(err, ArchiveError::Damaged(_)), "{err}");
    let err = convert_foreign(&b"plain text"[..], "data", &mut Vec::new(), 3).unwrap_err();
    assert!(matches!(err, ArchiveError::Damaged(_)), "{err}");
}

/// Every single flipped byte, anywhere in an archive, is refused by the verification and
/// by the unpacking (the old contents left in place), unless it changes nothing that is
/// decoded: zstd's frame checksum is read to its end, after tar's end-of-archive blocks
/// (flips in the padding and the checksum once passed as verified).
#[test]
fn every_flipped_byte_is_refused_unless_it_changes_nothing() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), vec![1u8; 30_000]).unwrap();
    fs::write(src.path().join("g"), b"some text that compresses a little").unwrap();
    let mut packed = Vec::new();
    pack(src.path(), &mut packed, 1, &AtomicU64::new(0)).unwrap();
    let mut original = Vec::new();
    zstd::stream::copy_decode(packed.as_slice(), &mut original).unwrap();
    for at in 0..packed.len() {
        let mut damaged = packed.clone();
        damaged[at] ^= 0x55;
        let dst = tempfile::tempdir().unwrap();
        fs::write(dst.path().join("keep"), "old").unwrap();
        let before = listing(dst.path());
        let verified = verify(damaged.as_slice()).is_ok();
        let unpacked = unpack(damaged.as_slice(), dst.path()).is_ok();
        assert_eq!(verified, unpacked, "byte {at}: the verification and the unpacking disagree");
        if verified {
            let mut decoded = Vec::new();
            let same =
                zstd::stream::copy_decode(damaged.as_slice(), &mut decoded).is_ok() && decoded == original;
            assert!(same, "byte {at}: a changed stream passed as verified");
        } else {
            assert_eq!(before, listing(dst.path()), "byte {at}: the old contents stay");
        }
    }
}
