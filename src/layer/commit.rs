//! Directory of changes → deterministic layer tar.
//!
//! The input is an overlayfs upper directory (or any tree in that form):
//! a 0:0 character device is a whiteout and becomes `.wh.NAME`; a directory
//! with `trusted.overlay.opaque=y` gets a `.wh..wh..opq` entry. Entries are
//! sorted by name, owners are numeric, mtimes are clamped to
//! SOURCE_DATE_EPOCH when it is set, hard links become link entries, and
//! extended attributes (`security.capability` included, overlay's own
//! excluded) travel as PAX records.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use gzp::ZWriter as _;

use super::unpack::{OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::digest::HashingWriter;

/// gzip level for every layer kiln writes. It decides layer digests, so it
/// never changes within a store format version.
pub const GZIP_LEVEL: u32 = 1;
/// zstd level when zstd is chosen.
pub const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

/// A compressed layer written to a file.
#[derive(Debug, Clone)]
pub struct WrittenLayer {
    pub diff_id: String,
    pub digest: String,
    pub size: u64,
    pub media_type: &'static str,
}

/// Writes `dir` as a compressed layer to `out`.
pub fn write_layer(
    dir: &Path,
    out: File,
    compression: Compression,
) -> io::Result<(File, WrittenLayer)> {
    let blob = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
    let epoch = crate::image::source_date_epoch();
    let (blob, diff_id, media_type) = match compression {
        Compression::Gzip => {
            let gz = parallel_gzip(blob, threads())?;
            let mut tar = HashingWriter::new(gz);
            write_tar(dir, &mut tar, epoch)?;
            let (mut gz, diff_id, _) = tar.finish();
            (
                gz.finish().map_err(io::Error::other)?,
                diff_id,
                crate::image::MEDIA_LAYER_GZIP,
            )
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(blob, ZSTD_LEVEL)?;
            enc.multithread(threads() as u32)?;
            let mut tar = HashingWriter::new(enc);
            write_tar(dir, &mut tar, epoch)?;
            let (enc, diff_id, _) = tar.finish();
            (enc.finish()?, diff_id, crate::image::MEDIA_LAYER_ZSTD)
        }
    };
    let (buffered, digest, size) = blob.finish();
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((
        file,
        WrittenLayer {
            diff_id,
            digest,
            size,
            media_type,
        },
    ))
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A gzip stream compressed in parallel blocks, each primed with the last
/// 32 KiB of the one before (as pigz does), so the bytes do not depend on
/// the number of threads: only on [`GZIP_LEVEL`] and the block size.
pub fn parallel_gzip<W: Write + Send + 'static>(out: W, threads: usize) -> io::Result<ParGzip<W>> {
    Ok(
        gzp::par::compress::ParCompressBuilder::<gzp::deflate::Gzip>::new()
            .num_threads(threads.max(1))
            .map_err(io::Error::other)?
            .compression_level(gzp::Compression::new(GZIP_LEVEL))
            .from_writer(out),
    )
}

pub type ParGzip<W> = gzp::par::compress::ParCompress<'static, gzp::deflate::Gzip, W>;

/// Writes the uncompressed tar of `dir` to `out`.
pub fn write_tar(dir: &Path, out: &mut impl Write, epoch: Option<i64>) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let walker = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walker {
        let entry = entry.map_err(io::Error::other)?;
        let rel = entry.path().strip_prefix(dir).map_err(io::Error::other)?;
        let rel = rel.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` is not UTF-8", rel.display()),
            )
        })?;
        let meta = entry.path().symlink_metadata()?;
        let ft = meta.file_type();
        let mtime = match epoch {
            Some(e) => meta.mtime().min(e),
            None => meta.mtime(),
        };
        if ft.is_char_device() && meta.rdev() == 0 {
            let (parent, name) = rel.rsplit_once('/').map_or(("", rel), |(p, n)| (p, n));
            let wh = if parent.is_empty() {
                format!("{WHITEOUT_PREFIX}{name}")
            } else {
                format!("{parent}/{WHITEOUT_PREFIX}{name}")
            };
            let mut h = base_header(tar::EntryType::Regular, 0, 0, 0, mtime);
            h.set_size(0);
            tar.append_data(&mut h, wh, io::empty())?;
            continue;
        }
        let xattrs = read_xattrs(entry.path())?;
        let pax: Vec<(String, Vec<u8>)> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
            .collect();
        if !pax.is_empty() {
            tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        let mode = meta.mode() & 0o7777;
        if ft.is_dir() {
            let mut h = base_header(
                tar::EntryType::Directory,
                mode,
                meta.uid(),
                meta.gid(),
                mtime,
            );
            h.set_size(0);
            tar.append_data(&mut h, format!("{rel}/"), io::empty())?;
            if xattr::get(entry.path(), OVERLAY_OPAQUE_XATTR)?.as_deref() == Some(b"y") {
                let mut h = base_header(tar::EntryType::Regular, 0, 0, 0, mtime);
                h.set_size(0);
                tar.append_data(&mut h, format!("{rel}/{OPAQUE_MARKER}"), io::empty())?;
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            let mut h = base_header(
                tar::EntryType::Symlink,
                0o777,
                meta.uid(),
                meta.gid(),
                mtime,
            );
            h.set_size(0);
            tar.append_link(&mut h, rel, target)?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&key) {
                    let mut h =
                        base_header(tar::EntryType::Link, mode, meta.uid(), meta.gid(), mtime);
                    h.set_size(0);
                    tar.append_link(&mut h, rel, first)?;
                    continue;
                }
                links.insert(key, rel.to_string());
            }
            let mut h = base_header(tar::EntryType::Regular, mode, meta.uid(), meta.gid(), mtime);
            h.set_size(meta.len());
            tar.append_data(&mut h, rel, File::open(entry.path())?)?;
        } else if ft.is_fifo() {
            let mut h = base_header(tar::EntryType::Fifo, mode, meta.uid(), meta.gid(), mtime);
            h.set_size(0);
            tar.append_data(&mut h, rel, io::empty())?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = base_header(kind, mode, meta.uid(), meta.gid(), mtime);
            let rdev = meta.rdev();
            h.set_device_major(rustix::fs::major(rdev))?;
            h.set_device_minor(rustix::fs::minor(rdev))?;
            h.set_size(0);
            tar.append_data(&mut h, rel, io::empty())?;
        }
        // Sockets have no place in a layer.
    }
    tar.finish()
}

fn base_header(kind: tar::EntryType, mode: u32, uid: u32, gid: u32, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mtime(mtime.max(0) as u64);
    h
}

fn read_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in xattr::list(path)? {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        if let Some(value) = xattr::get(path, name)? {
            out.push((name.to_string(), value));
        }
    }
    out.sort();
    Ok(out)
}
