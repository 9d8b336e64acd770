//! Images out of the store: an OCI layout directory, an oci-archive, or a
//! docker-archive that `docker load` reads.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context as _, bail};
use fn_error_context::context;
use serde::Serialize;

use crate::image::{ANNOTATION_REF_NAME, Index};
use crate::store::{Store, StoredImage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Oci,
    OciArchive,
    DockerArchive,
}

/// Exports image `name` to `dest` in `format`. The result appears by
/// rename, so an interrupted export leaves nothing at `dest`.
#[context("exporting `{name}` to `{}`", dest.display())]
pub fn export(store: &Store, name: &str, format: Format, dest: &Path) -> anyhow::Result<()> {
    let image = store.resolve(name)?;
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    match format {
        Format::Oci => {
            if dest.exists() {
                bail!(
                    "`{}` exists; remove it or choose another path",
                    dest.display()
                );
            }
            let tmp = tempfile::Builder::new()
                .prefix(".kiln-export-")
                .tempdir_in(parent)?;
            write_layout(store, &image, tmp.path())?;
            fs::rename(tmp.path(), dest)?;
            // The directory is renamed away; nothing left to clean.
            std::mem::forget(tmp);
        }
        Format::OciArchive | Format::DockerArchive => {
            let mut tmp = tempfile::Builder::new()
                .prefix(".kiln-export-")
                .tempfile_in(parent)?;
            {
                let mut tar = tar::Builder::new(io::BufWriter::new(tmp.as_file_mut()));
                if format == Format::OciArchive {
                    write_layout_tar(store, &image, &mut tar)?;
                } else {
                    write_docker_archive(store, &image, &mut tar)?;
                }
                tar.into_inner()?.flush()?;
            }
            tmp.as_file().sync_all()?;
            tmp.persist(dest).map_err(|e| e.error)?;
        }
    }
    Ok(())
}

fn blobs(image: &StoredImage) -> Vec<String> {
    let mut v = vec![
        image.manifest_descriptor.digest.clone(),
        image.manifest.config.digest.clone(),
    ];
    v.extend(image.manifest.layers.iter().map(|l| l.digest.clone()));
    v
}

fn layout_index(image: &StoredImage) -> Index {
    let mut d = image.manifest_descriptor.clone();
    d.annotations
        .insert(ANNOTATION_REF_NAME.to_string(), image.name.clone());
    Index {
        manifests: vec![d],
        ..Index::default()
    }
}

fn write_layout(store: &Store, image: &StoredImage, dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir.join("blobs/sha256"))?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec_pretty(&layout_index(image))?,
    )?;
    for digest in blobs(image) {
        let from = store.blob_path(&digest)?;
        let to = dir
            .join("blobs/sha256")
            .join(from.file_name().expect("blob file name"));
        if to.exists() {
            continue;
        }
        // Blobs are immutable: a hard link is a copy that costs nothing.
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).with_context(|| format!("copying blob `{digest}`"))?;
        }
    }
    Ok(())
}

fn append_bytes(tar: &mut tar::Builder<impl Write>, path: &str, bytes: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(bytes.len() as u64);
    h.set_mtime(0);
    tar.append_data(&mut h, path, bytes)
}

fn append_blob(
    tar: &mut tar::Builder<impl Write>,
    store: &Store,
    digest: &str,
    path: &str,
) -> anyhow::Result<()> {
    let file = fs::File::open(store.blob_path(digest)?)?;
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(file.metadata()?.len());
    h.set_mtime(0);
    tar.append_data(&mut h, path, file)?;
    Ok(())
}

fn dir_entry(tar: &mut tar::Builder<impl Write>, path: &str) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    tar.append_data(&mut h, path, io::empty())
}

fn write_layout_tar(
    store: &Store,
    image: &StoredImage,
    tar: &mut tar::Builder<impl Write>,
) -> anyhow::Result<()> {
    append_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    append_bytes(
        tar,
        "index.json",
        &serde_json::to_vec(&layout_index(image))?,
    )?;
    dir_entry(tar, "blobs/")?;
    dir_entry(tar, "blobs/sha256/")?;
    let mut seen = std::collections::BTreeSet::new();
    for digest in blobs(image) {
        if seen.insert(digest.clone()) {
            let hex = crate::digest::sha256_hex(&digest).expect("checked digest");
            append_blob(tar, store, &digest, &format!("blobs/sha256/{hex}"))?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// The `docker save` format: `manifest.json`, the config, one file per
/// layer. Layers stay compressed; `docker load` detects and decompresses.
fn write_docker_archive(
    store: &Store,
    image: &StoredImage,
    tar: &mut tar::Builder<impl Write>,
) -> anyhow::Result<()> {
    let config_hex =
        crate::digest::sha256_hex(&image.manifest.config.digest).expect("checked digest");
    let config_path = format!("{config_hex}.json");
    append_blob(tar, store, &image.manifest.config.digest, &config_path)?;
    let mut layers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for layer in &image.manifest.layers {
        let hex = crate::digest::sha256_hex(&layer.digest).expect("checked digest");
        let path = format!("{hex}/layer.tar");
        if seen.insert(hex.to_string()) {
            dir_entry(tar, &format!("{hex}/"))?;
            append_blob(tar, store, &layer.digest, &path)?;
        }
        layers.push(path);
    }
    let manifest = vec![DockerManifestEntry {
        config: config_path,
        repo_tags: vec![docker_tag(&image.name)],
        layers,
    }];
    append_bytes(tar, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    Ok(())
}

/// Docker wants `repo:tag` without a digest.
fn docker_tag(name: &str) -> String {
    crate::image::normalize_reference(name.split('@').next().unwrap_or(name))
}
