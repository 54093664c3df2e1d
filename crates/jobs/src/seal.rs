//! Encryption at rest with [age](https://age-encryption.org): archives on a target with
//! `encryption.recipients` are encrypted, as they stream, to those X25519 recipients; a
//! restore decrypts them with an identity file. Only public keys are ever configured on a
//! target or written in a manifest; the identity is read from its file when a restore
//! needs it and never leaves the process.
//!
//! [`Sealed`] sits between an archive stream and the object being written: it encrypts
//! when asked and hashes what is stored either way, so the manifest's SHA-256 is always
//! that of the object. [`opened`] does the reverse on a stream of object chunks.

use std::io::{Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use sha2::Digest;
use tokio::io::AsyncWrite;

use crate::secret::Secret;

/// The suffix an encrypted archive's key gets after `.tar.zst`.
pub const AGE_SUFFIX: &str = ".age";

/// Parses age X25519 recipients (`age1…`), saying which one is wrong.
pub(crate) fn recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>, String> {
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            age::x25519::Recipient::from_str(r.trim())
                .map_err(|e| format!("entry {i} ({r:?}) is not an age X25519 recipient (age1…): {e}"))
        })
        .collect()
}

/// An age identity file's contents, read once where the restore starts.
#[derive(Debug, Clone)]
pub struct AgeIdentity {
    path: String,
    text: Secret,
}

/// An identity file that cannot be read or holds no identity: which file, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(String);

impl AgeIdentity {
    /// Reads and checks the identity file at `path`: it must hold at least one identity.
    pub fn read(path: &Path) -> Result<Self, IdentityError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| IdentityError(format!("cannot read the age identity file {shown}: {e}")))?;
        let identity = Self { path: shown, text: Secret::new(text) };
        identity.identities().map_err(IdentityError)?;
        Ok(identity)
    }

    /// The file it came from.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn identities(&self) -> Result<Vec<Box<dyn age::Identity>>, String> {
        let bad = |e: &dyn std::fmt::Display| format!("the age identity file {}: {e}", self.path);
        let file = age::IdentityFile::from_buffer(self.text.expose().as_bytes()).map_err(|e| bad(&e))?;
        let identities = file.into_identities().map_err(|e| bad(&e))?;
        if identities.is_empty() {
            return Err(bad(&"it holds no identity (AGE-SECRET-KEY-1…)"));
        }
        Ok(identities)
    }
}

/// Bytes shared between age's blocking writer and [`Sealed`], which drains them.
#[derive(Clone, Default)]
struct Spill(Arc<Mutex<Vec<u8>>>);

impl Spill {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Spill {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer in front of an object: encrypts to the target's recipients when it has any,
/// and counts and hashes what reaches the object. [`Sealed::finish`] ends the encryption
/// without closing the object, so that the caller still decides whether to complete it.
pub(crate) struct Sealed<W> {
    inner: W,
    age: Option<age::stream::StreamWriter<Spill>>,
    spill: Spill,
    /// Ciphertext taken from the spill, not yet written to `inner` from `at`.
    out: Vec<u8>,
    at: usize,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W: AsyncWrite + Unpin> Sealed<W> {
    /// Writes to `inner` as is when `recipients` is empty, else encrypted to them.
    pub(crate) fn new(inner: W, recipients: &[age::x25519::Recipient]) -> std::io::Result<Self> {
        let spill = Spill::default();
        let age = if recipients.is_empty() {
            None
        } else {
            let encryptor =
                age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(std::io::Error::other)?;
            Some(encryptor.wrap_output(spill.clone())?)
        };
        let mut sealed =
            Self { inner, age, spill, out: Vec::new(), at: 0, hasher: sha2::Sha256::new(), bytes: 0 };
        sealed.out = sealed.spill.take();
        Ok(sealed)
    }

    /// The object's writer.
    pub(crate) fn inner_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Bytes written to the object and their SHA-256 (hex), once [`Sealed::finish`]ed.
    pub(crate) fn written(&self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.clone().finalize()))
    }

    /// Ends the encryption (its last chunk) and writes everything out, without closing
    /// the object.
    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        if let Some(age) = self.age.take() {
            age.finish()?;
            self.out.extend(self.spill.take());
        }
        std::future::poll_fn(|cx| self.drain(cx)).await?;
        tokio::io::AsyncWriteExt::flush(&mut self.inner).await
    }

    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.at < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.at..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.hasher.update(&self.out[self.at..self.at + n]);
            self.bytes += n as u64;
            self.at += n;
        }
        self.out.clear();
        self.at = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Sealed<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        match &mut this.age {
            None => {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
                this.hasher.update(&buf[..n]);
                this.bytes += n as u64;
                Poll::Ready(Ok(n))
            }
            Some(age) => {
                // age encrypts in 64 KiB chunks: at most one chunk plus `buf` waits here.
                age.write_all(buf)?;
                this.out = this.spill.take();
                Poll::Ready(Ok(buf.len()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Decrypts a stream of object chunks on a blocking thread: what comes out of the returned
/// receiver is the plaintext archive, or an error that says why it cannot be decrypted
/// (the wrong identity, a damaged or truncated object).
pub(crate) fn opened(
    cipher: tokio::sync::mpsc::Receiver<Bytes>,
    identity: &AgeIdentity,
) -> tokio::sync::mpsc::Receiver<Result<Bytes, String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let identity = identity.clone();
    tokio::task::spawn_blocking(move || {
        let failed = |tx: &tokio::sync::mpsc::Sender<Result<Bytes, String>>, e: String| {
            let _ = tx.blocking_send(Err(e));
        };
        let identities = match identity.identities() {
            Ok(i) => i,
            Err(e) => return failed(&tx, e),
        };
        let decryptor = match age::Decryptor::new(crate::seal::ChannelReader::new(cipher)) {
            Ok(d) => d,
            Err(e) => return failed(&tx, format!("the object is not an age file: {e}")),
        };
        let mut reader = match decryptor.decrypt(identities.iter().map(|i| i.as_ref())) {
            Ok(r) => r,
            Err(e) => {
                return failed(&tx, format!("cannot decrypt with the identity in {}: {e}", identity.path()));
            }
        };
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        return;
                    }
                }
                Err(e) => return failed(&tx, format!("the encrypted object is damaged or cut short: {e}")),
            }
        }
    });
    rx
}

/// A blocking reader over a channel of byte chunks.
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Self { rx, current: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn sealed_round_trips_through_age_and_hashes_what_is_stored() {
        let key = age::x25519::Identity::generate();
        let recipient = key.to_public();
        let plain: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut sealed = Sealed::new(Vec::new(), std::slice::from_ref(&recipient)).unwrap();
        for chunk in plain.chunks(10_007) {
            sealed.write_all(chunk).await.unwrap();
        }
        sealed.finish().await.unwrap();
        let (bytes, sha) = sealed.written();
        let stored = sealed.inner_mut().clone();
        assert_eq!(bytes, stored.len() as u64);
        assert_eq!(sha, hex::encode(sha2::Sha256::digest(&stored)));
        assert!(stored.starts_with(b"age-encryption.org/v1\n"), "not an age file");
        assert!(!stored.windows(16).any(|w| w == &plain[1000..1016]), "plaintext in the object");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        std::fs::write(&path, format!("{}\n", secrecy_text(&key))).unwrap();
        let identity = AgeIdentity::read(&path).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let feed = tokio::spawn(async move {
            for chunk in stored.chunks(65_000) {
                tx.send(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
        });
        let mut out = Vec::new();
        let mut rx = opened(rx, &identity);
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        feed.await.unwrap();
        assert_eq!(out, plain);
    }

    #[tokio::test]
    async fn the_wrong_identity_and_a_cut_object_are_named() {
        let key = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let mut sealed = Sealed::new(Vec::new(), &[key.to_public()]).unwrap();
        sealed.write_all(&[7u8; 200_000]).await.unwrap();
        sealed.finish().await.unwrap();
        let stored = sealed.inner_mut().clone();
        let dir = tempfile::tempdir().unwrap();
        let decrypt = |who: &age::x25519::Identity, data: Vec<u8>| {
            let path = dir.path().join("k.txt");
            std::fs::write(&path, secrecy_text(who)).unwrap();
            let identity = AgeIdentity::read(&path).unwrap();
            async move {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tx.send(Bytes::from(data)).await.unwrap();
                drop(tx);
                let mut rx = opened(rx, &identity);
                let mut last = Ok(Bytes::new());
                while let Some(c) = rx.recv().await {
                    last = c;
                    if last.is_err() {
                        break;
                    }
                }
                last
            }
        };
        let wrong = decrypt(&other, stored.clone()).await.unwrap_err();
        assert!(wrong.contains("cannot decrypt with the identity in"), "{wrong}");
        let cut = decrypt(&key, stored[..stored.len() - 100].to_vec()).await.unwrap_err();
        assert!(cut.contains("damaged or cut short"), "{cut}");
    }

    #[test]
    fn recipients_and_identity_files_are_checked() {
        let key = age::x25519::Identity::generate();
        let good = key.to_public().to_string();
        assert_eq!(recipients(std::slice::from_ref(&good)).unwrap().len(), 1);
        let err = recipients(&[good, "age1nope".into()]).unwrap_err();
        assert!(err.contains("entry 1 (\"age1nope\")"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.txt");
        std::fs::write(&path, "# nothing\n").unwrap();
        let err = AgeIdentity::read(&path).unwrap_err().to_string();
        assert!(err.contains("empty.txt") && err.contains("no identity"), "{err}");
        let err = AgeIdentity::read(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(err.contains("cannot read the age identity file"), "{err}");
    }

    fn secrecy_text(key: &age::x25519::Identity) -> String {
        use age::secrecy::ExposeSecret;
        key.to_string().expose_secret().to_owned()
    }

    #[test]
    fn the_channel_reader_reads_across_chunks() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Bytes::from_static(b"hel")).unwrap();
        tx.try_send(Bytes::from_static(b"lo")).unwrap();
        drop(tx);
        let mut out = String::new();
        ChannelReader::new(rx).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello");
    }
}
