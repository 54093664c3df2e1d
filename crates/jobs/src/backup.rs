//! Backups: backup-service and backup-node to a storage target, restore of either, a volume
//! moved between nodes, what is stored and how it is named, the intent label a stopped
//! service carries and the reconcile that honours it, and the archive format itself.

pub use crate::archive::{
    ArchiveError, DEFAULT_ZSTD_LEVEL, PackStats, STAGING, UnpackStats, content_size, pack, unpack, verify,
};
pub use crate::backup_service::{backup_all_services, backup_service};
pub use crate::node_backup::{backup_all_nodes, backup_node, node_targets, restore_node};
pub use crate::restore::restore_service;
pub use crate::seal::{AGE_SUFFIX, AgeIdentity, IdentityError};
pub use crate::steps::catalog::{
    ARCHIVE_SUFFIX, BackupObject, FOREIGN_CHECK, FOREIGN_SUFFIX, MANIFEST_SUFFIX, Manifest, NoBackup,
    NotOwnArchive, RestoreOptions, archive_key, choose_backups, expired, key_timestamp, list_backups,
    list_foreign, node_dir, own_archive, parse_archive_name, parse_foreign_name, parse_key_timestamp,
    service_targets,
};
pub use crate::steps::lookup::{NotMounted, resolve_volume, service_volumes};
pub use crate::steps::scale::{INTENT_LABEL, reconcile, restore_replicas};
pub use crate::volume_move::{MoveRequest, move_volume};
