//! The step cache: `kiln-v1/cache/<key hex>.json`, one file per step key.

use serde::{Deserialize, Serialize};

use super::{LayerRef, Store};
use crate::image::History;

/// What a step produced, enough to reuse it without running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub layer: LayerRef,
    pub history: History,
    /// The parts of the key, for `plan --explain`.
    #[serde(default)]
    pub inputs: Vec<(String, String)>,
}

fn path(store: &Store, key: &str) -> anyhow::Result<std::path::PathBuf> {
    let hex =
        crate::digest::sha256_hex(key).ok_or_else(|| anyhow::anyhow!("bad cache key `{key}`"))?;
    Ok(store.state_dir().join("cache").join(format!("{hex}.json")))
}

/// An entry whose blob is gone counts as a miss.
pub fn get(store: &Store, key: &str) -> anyhow::Result<Option<CacheEntry>> {
    let path = path(store, key)?;
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let entry: CacheEntry = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        // An entry from another format is a miss, not an error.
        Err(_) => return Ok(None),
    };
    Ok(store.has_blob(&entry.layer.blob.digest).then_some(entry))
}

pub fn put(store: &Store, key: &str, entry: &CacheEntry) -> anyhow::Result<()> {
    let path = path(store, key)?;
    store.write_atomic(&path, &serde_json::to_vec(entry)?)?;
    Ok(())
}
