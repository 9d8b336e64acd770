//! Consistency checks (`kiln fsck`) and garbage collection (`kiln prune`).

use std::collections::BTreeSet;
use std::fs;

use super::{CacheEntry, Store};
use crate::digest::sha256_hex;
use crate::image::{ImageConfig, Manifest};

#[derive(Debug, Default)]
pub struct FsckReport {
    pub blobs_checked: usize,
    pub problems: Vec<String>,
}

#[derive(Debug, Default)]
pub struct PruneReport {
    pub blobs_removed: usize,
    pub layers_removed: usize,
    pub cache_entries_removed: usize,
    pub bytes_freed: u64,
}

/// Verifies every blob's digest, that every image's manifest, config and
/// layers are present, that every cache entry's blob is present, and that
/// `tmp/` holds nothing a finished build left.
pub fn fsck(store: &Store) -> anyhow::Result<FsckReport> {
    let mut report = FsckReport::default();
    for entry in fs::read_dir(store.root().join("blobs/sha256"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            report
                .problems
                .push(format!("temporary file `blobs/sha256/{name}` left behind"));
            continue;
        }
        let mut file = fs::File::open(entry.path())?;
        let mut hashing = crate::digest::HashingReader::new(&mut file);
        std::io::copy(&mut hashing, &mut std::io::sink())?;
        let (digest, _) = hashing.finish();
        report.blobs_checked += 1;
        if digest != format!("sha256:{name}") {
            report
                .problems
                .push(format!("blob `{name}` has content digest `{digest}`"));
        }
    }
    for (name, desc) in store.images()? {
        if !store.has_blob(&desc.digest) {
            report.problems.push(format!(
                "image `{name}`: manifest `{}` missing",
                desc.digest
            ));
            continue;
        }
        let manifest: Manifest = match store.read_json(&desc.digest) {
            Ok(m) => m,
            Err(e) => {
                report
                    .problems
                    .push(format!("image `{name}`: manifest unreadable: {e:#}"));
                continue;
            }
        };
        if !store.has_blob(&manifest.config.digest) {
            report.problems.push(format!(
                "image `{name}`: config `{}` missing",
                manifest.config.digest
            ));
        } else {
            let config: ImageConfig = match store.read_json(&manifest.config.digest) {
                Ok(c) => c,
                Err(e) => {
                    report
                        .problems
                        .push(format!("image `{name}`: config unreadable: {e:#}"));
                    continue;
                }
            };
            if config.rootfs.diff_ids.len() != manifest.layers.len() {
                report.problems.push(format!(
                    "image `{name}`: {} diff_ids for {} layers",
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                ));
            }
        }
        for layer in &manifest.layers {
            if !store.has_blob(&layer.digest) {
                report
                    .problems
                    .push(format!("image `{name}`: layer `{}` missing", layer.digest));
            }
        }
    }
    for entry in fs::read_dir(store.state_dir().join("cache"))? {
        let entry = entry?;
        let bytes = fs::read(entry.path())?;
        match serde_json::from_slice::<CacheEntry>(&bytes) {
            Ok(c) if !store.has_blob(&c.layer.blob.digest) => report.problems.push(format!(
                "cache entry `{}` names missing blob `{}`",
                entry.file_name().to_string_lossy(),
                c.layer.blob.digest
            )),
            Ok(_) => {}
            Err(e) => report.problems.push(format!(
                "cache entry `{}` unreadable: {e}",
                entry.file_name().to_string_lossy()
            )),
        }
    }
    Ok(report)
}

/// Removes blobs and unpacked layers that no image (and, unless
/// `drop_cache`, no cache entry) needs. The caller holds the exclusive lock.
pub fn prune(store: &Store, drop_cache: bool) -> anyhow::Result<PruneReport> {
    let mut report = PruneReport::default();
    let mut keep_blobs = BTreeSet::new();
    let mut keep_layers = BTreeSet::new();
    for (_, desc) in store.images()? {
        keep_blobs.insert(desc.digest.clone());
        let Ok(manifest) = store.read_json::<Manifest>(&desc.digest) else {
            continue;
        };
        keep_blobs.insert(manifest.config.digest.clone());
        for l in &manifest.layers {
            keep_blobs.insert(l.digest.clone());
        }
        if let Ok(config) = store.read_json::<ImageConfig>(&manifest.config.digest) {
            keep_layers.extend(config.rootfs.diff_ids);
        }
    }
    for entry in fs::read_dir(store.state_dir().join("cache"))? {
        let entry = entry?;
        let parsed = serde_json::from_slice::<CacheEntry>(&fs::read(entry.path())?);
        match parsed {
            Ok(c) if !drop_cache && store.has_blob(&c.layer.blob.digest) => {
                keep_blobs.insert(c.layer.blob.digest.clone());
                keep_layers.insert(c.layer.diff_id.clone());
            }
            _ => {
                fs::remove_file(entry.path())?;
                report.cache_entries_removed += 1;
            }
        }
    }
    for entry in fs::read_dir(store.root().join("blobs/sha256"))? {
        let entry = entry?;
        let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
        if !keep_blobs.contains(&digest) {
            report.bytes_freed += entry.metadata()?.len();
            fs::remove_file(entry.path())?;
            report.blobs_removed += 1;
        }
    }
    for entry in fs::read_dir(store.state_dir().join("layers"))? {
        let entry = entry?;
        let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
        if sha256_hex(&digest).is_none() || !keep_layers.contains(&digest) {
            fs::remove_dir_all(entry.path())?;
            report.layers_removed += 1;
        }
    }
    Ok(report)
}
