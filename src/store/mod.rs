//! The local store: a valid OCI image layout plus kiln's private state.
//!
//! ```text
//! STORE/
//! ├── oci-layout                 {"imageLayoutVersion": "1.0.0"}
//! ├── index.json                 one manifest per image name, named by the
//! │                              org.opencontainers.image.ref.name annotation
//! ├── blobs/sha256/<hex>         configs, manifests and layer blobs
//! └── kiln-v1/                   kiln's own state; the version changes with
//!     │                          the format, so old data is never misread
//!     ├── gc.lock                builds hold it shared, prune/rm exclusive
//!     ├── index.lock             held exclusively while index.json changes
//!     ├── layers/<diff hex>/     unpacked layers, the overlay lower dirs
//!     ├── cache/<key hex>.json   step results: key → layer + history
//!     ├── mounts/<id hex>/       RUN --mount=type=cache directories
//!     ├── sources/<hex>          downloaded ADD sources, by content
//!     └── tmp/                   scratch; swept when nobody builds
//! ```
//!
//! Every file appears by `rename` of a finished temporary file in the same
//! file system, so readers see whole files or none. Blobs are written before
//! the cache entries and manifests that name them, and removed only under
//! the exclusive gc lock, so no entry ever points at a missing blob. A
//! killed process leaves garbage only in `tmp/`.

mod cache;
mod fsck;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fn_error_context::context;

pub use cache::CacheEntry;
pub use fsck::FsckReport;

use crate::digest::{self, sha256_hex};
use crate::image::{Descriptor, ImageConfig, Index, Manifest};

/// Store-level failures that callers act on; everything else is an
/// `anyhow` error with context.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no image `{name}` in the store `{}`\n  hint: build it, or provide it with `kiln import ROOTFS.tar {name}` or `kiln bootstrap debian SUITE {name}`", store.display())]
    UnknownImage { name: String, store: PathBuf },
    #[error("blob `{digest}` is missing from the store; run `kiln fsck`")]
    MissingBlob { digest: String },
    #[error("`{digest}` is not a sha256 digest")]
    BadDigest { digest: String },
}

/// An image resolved from the store.
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub name: String,
    pub manifest_descriptor: Descriptor,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

impl StoredImage {
    /// The image's layers, bottom first, each with its blob and diff_id.
    pub fn layers(&self) -> Vec<LayerRef> {
        self.manifest
            .layers
            .iter()
            .zip(&self.config.rootfs.diff_ids)
            .map(|(blob, diff_id)| LayerRef {
                diff_id: diff_id.clone(),
                blob: blob.clone(),
            })
            .collect()
    }
}

/// A layer as the engine carries it: enough to find its blob and its
/// unpacked directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerRef {
    pub diff_id: String,
    pub blob: Descriptor,
}

pub struct Store {
    root: PathBuf,
    /// Held (shared) for the life of this handle; see the module docs.
    _gc_lock: File,
}

const STATE_DIR: &str = "kiln-v1";

impl Store {
    /// Opens (creating if needed) the store at `root` and takes the shared
    /// gc lock. If no other kiln process holds it, leftovers in `tmp/` are
    /// swept first.
    #[context("opening the store `{}`", root.display())]
    pub fn open(root: &Path) -> anyhow::Result<Store> {
        let state = root.join(STATE_DIR);
        for dir in [
            "blobs/sha256",
            "kiln-v1/layers",
            "kiln-v1/cache",
            "kiln-v1/mounts",
            "kiln-v1/sources",
            "kiln-v1/tmp",
        ] {
            fs::create_dir_all(root.join(dir))?;
        }
        let gc = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(state.join("gc.lock"))?;
        if gc.try_lock().is_ok() {
            sweep_dir(&state.join("tmp"))?;
            gc.unlock()?;
        }
        gc.lock_shared()?;
        let store = Store {
            root: root.to_path_buf(),
            _gc_lock: gc,
        };
        if !root.join("oci-layout").exists() {
            store.write_atomic(
                &root.join("oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            )?;
        }
        if !root.join("index.json").exists() {
            let _guard = store.index_lock()?;
            if !root.join("index.json").exists() {
                store.write_index(&Index::default())?;
            }
        }
        Ok(store)
    }

    /// Takes the exclusive gc lock (waiting for builds to finish) for
    /// operations that delete.
    pub fn exclusive(self) -> anyhow::Result<Store> {
        self._gc_lock.unlock()?;
        self._gc_lock.lock()?;
        Ok(self)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = sha256_hex(digest).ok_or_else(|| StoreError::BadDigest {
            digest: digest.to_string(),
        })?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    #[context("reading blob `{digest}`")]
    pub fn read_blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::MissingBlob {
                digest: digest.to_string(),
            }
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &str) -> anyhow::Result<T> {
        let bytes = self.read_blob(digest)?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// A new temporary directory under the store, removed on drop.
    pub fn tempdir(&self) -> io::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("work-")
            .tempdir_in(self.state_dir().join("tmp"))
    }

    pub fn tempfile(&self) -> io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.state_dir().join("tmp"))
    }

    /// Writes bytes as a blob (no-op when it exists) and describes it.
    #[context("writing a {media_type} blob")]
    pub fn put_blob(&self, media_type: &str, bytes: &[u8]) -> anyhow::Result<Descriptor> {
        let digest = digest::sha256_of(bytes);
        let path = self.blob_path(&digest)?;
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
        }
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: bytes.len() as u64,
            annotations: Default::default(),
            platform: None,
        })
    }

    pub fn put_json<T: serde::Serialize>(
        &self,
        media_type: &str,
        value: &T,
    ) -> anyhow::Result<Descriptor> {
        self.put_blob(media_type, &serde_json::to_vec(value)?)
    }

    /// Moves a finished temporary file into place as blob `digest`.
    #[context("storing blob `{digest}`")]
    pub fn adopt_blob(&self, file: tempfile::NamedTempFile, digest: &str) -> anyhow::Result<()> {
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(());
        }
        file.persist(&path).map_err(|e| e.error)?;
        sync_parent(&path)?;
        Ok(())
    }

    /// Writes `bytes` to `path` through a temporary file and a rename.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    fn index_lock(&self) -> io::Result<File> {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.state_dir().join("index.lock"))?;
        f.lock()?;
        Ok(f)
    }

    fn write_index(&self, index: &Index) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(index).map_err(io::Error::other)?;
        self.write_atomic(&self.root.join("index.json"), &bytes)
    }

    #[context("reading `{}`", self.root.join("index.json").display())]
    pub fn index(&self) -> anyhow::Result<Index> {
        Ok(serde_json::from_slice(&fs::read(
            self.root.join("index.json"),
        )?)?)
    }

    /// Every named image: (name, manifest descriptor).
    pub fn images(&self) -> anyhow::Result<Vec<(String, Descriptor)>> {
        let mut out: Vec<(String, Descriptor)> = self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|d| {
                Some((
                    d.annotations
                        .get(crate::image::ANNOTATION_REF_NAME)?
                        .clone(),
                    d,
                ))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Looks an image up by name (`name` means `name:latest`) or by a
    /// manifest digest.
    pub fn resolve(&self, name: &str) -> anyhow::Result<StoredImage> {
        let wanted = crate::image::normalize_reference(name);
        let found = self
            .images()?
            .into_iter()
            .find(|(n, d)| *n == wanted || d.digest == name || n == name);
        let Some((found_name, descriptor)) = found else {
            return Err(StoreError::UnknownImage {
                name: name.to_string(),
                store: self.root.clone(),
            }
            .into());
        };
        let manifest: Manifest = self.read_json(&descriptor.digest)?;
        let config: ImageConfig = self.read_json(&manifest.config.digest)?;
        Ok(StoredImage {
            name: found_name,
            manifest_descriptor: descriptor,
            manifest,
            config,
        })
    }

    /// Writes config and manifest for an image and names it.
    pub fn commit_image(
        &self,
        config: &ImageConfig,
        layers: &[LayerRef],
        names: &[String],
    ) -> anyhow::Result<Descriptor> {
        let config_desc = self.put_json(crate::image::MEDIA_CONFIG, config)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: crate::image::MEDIA_MANIFEST.to_string(),
            config: config_desc,
            layers: layers.iter().map(|l| l.blob.clone()).collect(),
            annotations: Default::default(),
        };
        let mut desc = self.put_json(crate::image::MEDIA_MANIFEST, &manifest)?;
        desc.platform = Some(crate::image::Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
        });
        for name in names {
            self.tag(name, &desc)?;
        }
        Ok(desc)
    }

    /// Points `name` at a manifest, replacing what it named before.
    #[context("tagging `{name}`")]
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> anyhow::Result<()> {
        let name = crate::image::normalize_reference(name);
        let _guard = self.index_lock()?;
        let mut index = self.index()?;
        let mut d = manifest.clone();
        d.annotations
            .insert(crate::image::ANNOTATION_REF_NAME.to_string(), name.clone());
        // A rebuild that changed nothing rewrites nothing.
        if index.manifests.contains(&d) {
            return Ok(());
        }
        index
            .manifests
            .retain(|d| d.annotations.get(crate::image::ANNOTATION_REF_NAME) != Some(&name));
        index.manifests.push(d);
        self.write_index(&index)?;
        Ok(())
    }

    /// Removes a name; blobs stay until `prune`.
    pub fn untag(&self, name: &str) -> anyhow::Result<bool> {
        let wanted = crate::image::normalize_reference(name);
        let _guard = self.index_lock()?;
        let mut index = self.index()?;
        let before = index.manifests.len();
        index
            .manifests
            .retain(|d| d.annotations.get(crate::image::ANNOTATION_REF_NAME) != Some(&wanted));
        let removed = index.manifests.len() != before;
        if removed {
            self.write_index(&index)?;
        }
        Ok(removed)
    }

    /// The unpacked directory of a layer, unpacking its blob if needed.
    pub fn layer_dir(&self, layer: &LayerRef) -> anyhow::Result<PathBuf> {
        let hex = sha256_hex(&layer.diff_id).ok_or_else(|| StoreError::BadDigest {
            digest: layer.diff_id.clone(),
        })?;
        let dir = self.state_dir().join("layers").join(hex);
        if dir.exists() {
            return Ok(dir);
        }
        self.unpack_layer(layer, &dir)?;
        Ok(dir)
    }

    #[context("unpacking layer `{}`", layer.diff_id)]
    fn unpack_layer(&self, layer: &LayerRef, dir: &Path) -> anyhow::Result<()> {
        let tmp = self.tempdir()?;
        let target = tmp.path().join("layer");
        fs::create_dir(&target)?;
        let blob = File::open(self.blob_path(&layer.blob.digest)?)?;
        let mut hashing =
            crate::digest::HashingReader::new(crate::layer::unpack::decompress(blob)?);
        let root = crate::layer::confined::Root::open(&target)?;
        crate::layer::unpack::unpack(
            &mut hashing,
            &root,
            &[],
            crate::layer::unpack::Flavor::Overlay,
        )?;
        io::copy(&mut hashing, &mut io::sink())?;
        let (diff_id, _) = hashing.finish();
        anyhow::ensure!(
            diff_id == layer.diff_id,
            "layer content has diff_id `{diff_id}`, expected `{}`",
            layer.diff_id
        );
        self.adopt_dir(&target, dir)
    }

    /// Renames a finished directory into place; if another process got
    /// there first, ours is discarded.
    pub fn adopt_dir(&self, from: &Path, to: &Path) -> anyhow::Result<()> {
        match fs::rename(from, to) {
            Ok(()) => Ok(()),
            Err(e) if to.exists() => {
                tracing_debug(&format!("{} already present ({e})", to.display()));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn cache_get(&self, key: &str) -> anyhow::Result<Option<CacheEntry>> {
        cache::get(self, key)
    }

    pub fn cache_put(&self, key: &str, entry: &CacheEntry) -> anyhow::Result<()> {
        cache::put(self, key, entry)
    }

    pub fn fsck(&self) -> anyhow::Result<FsckReport> {
        fsck::fsck(self)
    }

    pub fn prune(&self, drop_cache: bool) -> anyhow::Result<fsck::PruneReport> {
        fsck::prune(self, drop_cache)
    }
}

fn tracing_debug(_message: &str) {}

fn sync_parent(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Removes everything in `dir`, keeping `dir`.
fn sweep_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}
