//! The helper image made from dockhand's own executable, so that a first backup needs no
//! image of ours from anywhere.
//!
//! The image holds the `dockhand` executable at `/usr/local/bin/dockhand` (its entrypoint)
//! and, when that executable is dynamically linked, its ELF interpreter and the shared
//! libraries the running process has mapped, at their own paths. A release binary built
//! static (`cargo xtask dist`, or the `image` profile with `crt-static`) gives an image of
//! one file. It is imported into the engine dockhand is connected to (`POST /images/create`,
//! as `docker import`) as `dockhand/helper:<version>-<build>`, once per build, and helpers
//! on that node run it by its image ID: a node never pulls an ID, so no registry is ever
//! asked for it. For the other nodes of a swarm, [`push_own_image`] pushes the same image to
//! an operator's registry and answers the digest reference to configure.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use dockhand_engine::{Client, RegistryAuth};

/// The repository the image is imported as, on the connected engine.
pub const OWN_IMAGE_REPO: &str = "dockhand/helper";
/// The label that records which build an imported image holds.
const BUILD_LABEL: &str = "dockhand.helper.build";
/// Where the executable is in the image.
const IN_IMAGE: &str = "/usr/local/bin/dockhand";

/// Why the image could not be made or pushed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnImageError {
    /// A file of the image could not be read.
    #[error("cannot read {path} for the helper image: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The engine refused a step.
    #[error("cannot {what} on the engine: {source}")]
    Engine {
        /// The step: `import the helper image dockhand/helper:...`, `push ...`.
        what: String,
        /// Why.
        #[source]
        source: Box<dockhand_engine::Error>,
    },
}

/// The `dockhand` executable an image is made from, and what it needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnExecutable {
    /// The executable: `/proc/self/exe` for the running `dockhand`, or the `dockhand` beside
    /// a running `dockhand-server`.
    pub path: PathBuf,
}

impl OwnExecutable {
    /// The running executable, which must be the `dockhand` CLI (the image's entrypoint
    /// runs `dockhand agent`).
    pub fn running() -> Self {
        Self { path: PathBuf::from(dockhand_host::procfs::SELF_EXE) }
    }

    /// The `dockhand` CLI installed beside the running executable (for `dockhand-server`,
    /// which has no `agent` command), when there is one.
    pub fn beside_running() -> Option<Self> {
        let path = std::env::current_exe().ok()?.parent()?.join("dockhand");
        path.is_file().then_some(Self { path })
    }

    /// The image's tag: dockhand's version and a hash of the files' sizes and times (cheap
    /// to compute on every run; a new build is a new tag).
    fn tag(&self, libraries: &[PathBuf]) -> Result<String, OwnImageError> {
        let mut hasher = std::hash::DefaultHasher::new();
        for path in std::iter::once(&self.path).chain(libraries) {
            let meta = std::fs::metadata(path)
                .map_err(|source| OwnImageError::Read { path: path.clone(), source })?;
            path.hash(&mut hasher);
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
            std::os::unix::fs::MetadataExt::ino(&meta).hash(&mut hasher);
        }
        Ok(format!("{}-{:016x}", env!("CARGO_PKG_VERSION"), hasher.finish()))
    }
}

/// The image's files, read from the machine: the executable, and (when it is dynamic) its
/// interpreter and the libraries the running process has mapped.
struct Contents {
    executable: Vec<u8>,
    /// `(path in the image, path on the machine)`.
    libraries: Vec<(String, PathBuf)>,
}

impl Contents {
    fn read(exe: &OwnExecutable) -> Result<Self, OwnImageError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| OwnImageError::Read { path: path.to_owned(), source })
        };
        let executable = read(&exe.path)?;
        let mut libraries = Vec::new();
        if let Some(interpreter) = elf_interpreter(&executable) {
            let maps = dockhand_host::procfs::self_maps().map_err(|source| OwnImageError::Read {
                path: dockhand_host::procfs::SELF_MAPS.into(),
                source,
            })?;
            libraries.push((interpreter.clone(), PathBuf::from(&interpreter)));
            for library in mapped_libraries(&maps) {
                if library != interpreter {
                    libraries.push((library.clone(), PathBuf::from(library)));
                }
            }
        }
        Ok(Self { executable, libraries })
    }

    /// The root filesystem, as a tar: `/usr/local/bin/dockhand`, the libraries, `/tmp`.
    fn tar(&self) -> Result<Vec<u8>, OwnImageError> {
        let io = |source| OwnImageError::Read { path: "the helper image's tar".into(), source };
        let mut tar = tar::Builder::new(Vec::with_capacity(self.executable.len() + (1 << 20)));
        let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(mode);
            header.set_size(0);
            tar.append_data(&mut header, path, std::io::empty())
        };
        dir(&mut tar, "tmp/", 0o1777).map_err(io)?;
        dir(&mut tar, "usr/local/bin/", 0o755).map_err(io)?;
        let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o755);
            header.set_size(bytes.len() as u64);
            tar.append_data(&mut header, path.trim_start_matches('/'), bytes)
        };
        file(&mut tar, IN_IMAGE, &self.executable).map_err(io)?;
        for (in_image, on_machine) in &self.libraries {
            let bytes = std::fs::read(on_machine)
                .map_err(|source| OwnImageError::Read { path: on_machine.clone(), source })?;
            file(&mut tar, in_image, &bytes).map_err(io)?;
        }
        tar.into_inner().map_err(io)
    }

    /// The image's configuration: its entrypoint, the libraries' directories, its build.
    fn changes(&self, tag: &str) -> Vec<String> {
        let mut changes = vec![format!("ENTRYPOINT [\"{IN_IMAGE}\"]"), format!("LABEL {BUILD_LABEL}={tag}")];
        let mut dirs: Vec<&str> =
            self.libraries.iter().filter_map(|(p, _)| p.rsplit_once('/').map(|(d, _)| d)).collect();
        dirs.sort_unstable();
        dirs.dedup();
        if !dirs.is_empty() {
            changes.push(format!("ENV LD_LIBRARY_PATH={}", dirs.join(":")));
        }
        changes
    }
}

/// Makes sure the engine `client` talks to holds the image of `exe` and answers its image
/// ID (`sha256:...`), which helpers on that node run. Imported once per build.
pub async fn ensure_own_image(client: &Client, exe: &OwnExecutable) -> Result<String, OwnImageError> {
    let contents = Contents::read(exe)?;
    let libraries: Vec<PathBuf> = contents.libraries.iter().map(|(_, p)| p.clone()).collect();
    let reference = format!("{OWN_IMAGE_REPO}:{}", exe.tag(&libraries)?);
    if let Ok(found) = client.image(&reference).await {
        return Ok(found.id);
    }
    let engine = |what: String| move |source| OwnImageError::Engine { what, source: Box::new(source) };
    let tar = contents.tar()?;
    client
        .import_image(&reference, &contents.changes(&reference), tar.into())
        .await
        .map_err(engine(format!("import the helper image {reference}")))?;
    let found =
        client.image(&reference).await.map_err(engine(format!("find the imported image {reference}")))?;
    Ok(found.id)
}

/// Builds the image of `exe` on the engine `client` talks to (as [`ensure_own_image`]),
/// tags it `repository:<version>-<build>` and pushes it there with `auth`; answers the
/// reference to configure as the helper image: `repository@sha256:...`.
pub async fn push_own_image(
    client: &Client,
    exe: &OwnExecutable,
    repository: &str,
    auth: Option<&RegistryAuth>,
) -> Result<String, OwnImageError> {
    let id = ensure_own_image(client, exe).await?;
    let found = client.image(&id).await.map_err(|source| OwnImageError::Engine {
        what: format!("find the helper image {id}"),
        source: Box::new(source),
    })?;
    let build = found
        .repo_tags
        .iter()
        .find_map(|t| t.strip_prefix(&format!("{OWN_IMAGE_REPO}:")))
        .unwrap_or(env!("CARGO_PKG_VERSION"))
        .to_owned();
    let reference = format!("{repository}:{build}");
    let engine = |what: String| move |source| OwnImageError::Engine { what, source: Box::new(source) };
    client
        .tag_image(&id, &reference)
        .await
        .map_err(engine(format!("tag the helper image as {reference}")))?;
    let digest = client.push_image(&reference, auth).await.map_err(engine(format!("push {reference}")))?;
    Ok(format!("{repository}@{digest}"))
}

/// The program interpreter (`PT_INTERP`) of a 64-bit little-endian ELF executable, such as
/// `/lib64/ld-linux-x86-64.so.2`; `None` for a static one (or anything else).
pub(crate) fn elf_interpreter(elf: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| elf.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|v| usize::try_from(v).ok())
    };
    let (table, entry, count) = (u64_at(0x20)?, usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    (0..count).map(|i| table + i * entry).find(|&h| u32_at(h) == Some(PT_INTERP)).and_then(|h| {
        let (offset, size) = (u64_at(h + 8)?, u64_at(h + 32)?);
        let bytes = elf.get(offset..offset.checked_add(size)?)?;
        let path = bytes.split(|&b| b == 0).next()?;
        std::str::from_utf8(path).ok().filter(|p| p.starts_with('/')).map(str::to_owned)
    })
}

/// The shared libraries in a process's `/proc/<pid>/maps`, each once, in order.
pub(crate) fn mapped_libraries(maps: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode [path]: the path is what follows the fifth field.
        let Some(path) = line.split_once(" /").map(|(_, p)| format!("/{}", p.trim_end())) else { continue };
        let name = path.rsplit('/').next().unwrap_or_default();
        if !path.ends_with(" (deleted)") && name.contains(".so") && !found.contains(&path) {
            found.push(path);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_names_its_interpreter_and_a_static_one_none() {
        let running = std::fs::read("/proc/self/exe").unwrap();
        // The test binary is linked as cargo links it here: dynamic, against glibc.
        let interpreter = elf_interpreter(&running).expect("the test binary is dynamic");
        assert!(interpreter.starts_with('/') && interpreter.contains("ld-"), "{interpreter}");
        // The same header without its program headers: no interpreter.
        let mut stripped = running[..64].to_vec();
        stripped[0x38..0x3a].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(elf_interpreter(&stripped), None);
        for not_elf in [&b""[..], b"#!/bin/sh\n", b"\x7fELF\x01\x01", &running[..0x30]] {
            assert_eq!(elf_interpreter(not_elf), None);
        }
    }

    #[test]
    fn the_libraries_of_a_process_are_its_mapped_shared_objects() {
        let maps = "\
55d0 r--p 00000000 08:01 123  /usr/local/bin/dockhand
7f00 r-xp 00000000 08:01 456                      /usr/lib/x86_64-linux-gnu/libc.so.6
7f01 r--p 00001000 08:01 456                      /usr/lib/x86_64-linux-gnu/libc.so.6
7f02 r--p 00000000 08:01 789                      /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
7f03 rw-p 00000000 00:00 0                        [heap]
7f04 r--p 00000000 08:01 790                      /usr/lib/locale/C.utf8/LC_CTYPE
7f05 r--p 00000000 08:01 791                      /tmp/old lib.so (deleted)
7f06 r-xp 00000000 08:01 792                      /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
";
        assert_eq!(
            mapped_libraries(maps),
            [
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
            ]
        );
        // The running test's own map has its C library.
        let own = mapped_libraries(&std::fs::read_to_string("/proc/self/maps").unwrap());
        assert!(own.iter().any(|l| l.contains("libc.so")), "{own:?}");
    }

    #[test]
    fn the_image_runs_its_executable_with_its_libraries_found() {
        let contents = Contents {
            executable: vec![0; 4],
            libraries: vec![
                ("/lib64/ld-linux-x86-64.so.2".into(), "/x".into()),
                ("/usr/lib/x86_64-linux-gnu/libc.so.6".into(), "/y".into()),
            ],
        };
        let changes = contents.changes("dockhand/helper:0.1.0-00");
        assert_eq!(changes[0], "ENTRYPOINT [\"/usr/local/bin/dockhand\"]");
        assert!(
            changes.contains(&"ENV LD_LIBRARY_PATH=/lib64:/usr/lib/x86_64-linux-gnu".to_owned()),
            "{changes:?}"
        );
        let static_one = Contents { executable: vec![0; 4], libraries: Vec::new() };
        assert_eq!(static_one.changes("t").len(), 2, "a static executable needs no library path");
    }
}
