//! One real peer per remote storage target type behind one face, so that a backup test is
//! written once and runs against each: S3 ([`S3Peer`]), Azure Blob Storage
//! ([`AzuritePeer`]), WebDAV ([`DavPeer`]) and SFTP ([`SftpPeer`]).

use crate::azure::AzuritePeer;
use crate::s3::S3Peer;
use crate::sftp::SftpPeer;
use crate::webdav::DavPeer;

/// Every remote target type, as a configuration's `type` names it.
pub const KINDS: [&str; 4] = ["s3", "azure", "webdav", "sftp"];

/// A running peer of one remote target type.
#[derive(Debug)]
pub enum Remote {
    /// SeaweedFS.
    S3(S3Peer),
    /// Azurite.
    Azure(AzuritePeer),
    /// Apache with mod_dav.
    WebDav(DavPeer),
    /// sshd with its SFTP subsystem.
    Sftp(SftpPeer),
}

impl Remote {
    /// Starts the peer of `kind` (one of [`KINDS`]).
    ///
    /// # Panics
    /// When `kind` is not one of [`KINDS`], or its peer does not start.
    pub fn start(kind: &str) -> Self {
        match kind {
            "s3" => Self::S3(S3Peer::start()),
            "azure" => Self::Azure(AzuritePeer::start()),
            "webdav" => Self::WebDav(DavPeer::start()),
            "sftp" => Self::Sftp(SftpPeer::start()),
            other => panic!("no remote target type {other:?}"),
        }
    }

    /// The target type, as `storage ls` shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::S3(_) => "s3",
            Self::Azure(_) => "azure",
            Self::WebDav(_) => "webdav",
            Self::Sftp(_) => "sftp",
        }
    }

    /// A configuration file's `storage.targets.<name>` entry for this peer, with its
    /// credentials read from the variables [`Remote::credentials`] sets.
    pub fn target_yaml(&self, name: &str, prefix: &str) -> String {
        match self {
            Self::S3(peer) => peer.target_yaml(name, prefix),
            Self::Azure(peer) => peer.target_yaml(name, prefix),
            Self::WebDav(peer) => peer.target_yaml(name, prefix),
            Self::Sftp(peer) => peer.target_yaml(name, prefix),
        }
    }

    /// The variables that hold the peer's credentials (none for SFTP: ssh reads its key
    /// file).
    pub fn credentials(&self) -> Vec<(String, String)> {
        let pairs: &[(&str, &str)] = match self {
            Self::S3(_) => &[("S3_KEY", crate::s3::ACCESS_KEY), ("S3_SECRET", crate::s3::SECRET_KEY)],
            Self::Azure(_) => &[("AZURE_KEY", crate::azure::ACCESS_KEY)],
            Self::WebDav(_) => &[("DAV_PASSWORD", crate::webdav::PASSWORD)],
            Self::Sftp(_) => &[],
        };
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// An entry like [`Remote::target_yaml`]'s whose credential the peer refuses, the
    /// variables it reads, and the wrong secret, which must never be printed.
    pub fn wrong(&self, name: &str, prefix: &str) -> (String, Vec<(String, String)>, String) {
        let mut vars = self.credentials();
        let wrong = match self {
            Self::S3(_) => "not-the-secret-key",
            // base64, as an account key is, but not the account's.
            Self::Azure(_) => "bm90LXRoZS1hY2NvdW50LWtleS1hdC1hbGwtMDEyMzQ=",
            Self::WebDav(_) => "not-the-webdav-password",
            Self::Sftp(peer) => {
                let key = std::fs::read_to_string(&peer.wrong_identity_file).expect("the wrong key");
                let body = key.lines().nth(1).expect("a key body").to_owned();
                return (peer.wrong_target_yaml(name, prefix), vars, body);
            }
        };
        if let Some(last) = vars.last_mut() {
            last.1 = wrong.to_owned();
        }
        (self.target_yaml(name, prefix), vars, wrong.to_owned())
    }

    /// The credentials' values (for SFTP, a line of its private key), which must never be
    /// printed or reach the swarm.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Self::Sftp(peer) => vec![peer.key_material()],
            _ => self.credentials().into_iter().map(|(_, v)| v).collect(),
        }
    }

    /// The peer's log, for a failure message.
    pub fn log(&self) -> String {
        match self {
            Self::S3(peer) => peer.log(),
            Self::Azure(peer) => peer.log(),
            Self::WebDav(peer) => peer.log(),
            Self::Sftp(peer) => peer.log(),
        }
    }
}
