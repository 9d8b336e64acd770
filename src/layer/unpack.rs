//! Archive → directory, without trusting the archive.
//!
//! Every entry is created through [`Root`], so neither `..`, absolute paths,
//! symlinks planted by earlier entries nor hard links can reach outside the
//! destination. Device nodes are never created from an archive; the sandbox
//! supplies its own `/dev`.
//!
//! Two flavours: [`Flavor::Overlay`] writes a layer in the form overlayfs
//! reads as a lower directory (`.wh.x` becomes a 0:0 character device `x`,
//! `.wh..wh..opq` becomes the `trusted.overlay.opaque` xattr), and
//! [`Flavor::Plain`] extracts an archive for `ADD`, where `.wh.` names have
//! no meaning and are skipped.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;

use rustix::fs::{self as rfs, Mode, OFlags};

use super::confined::{self, Root, components};

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// A layer kept as an overlay lower directory.
    Overlay,
    /// An ADD archive: `.wh.` names mean nothing and are skipped.
    Plain,
    /// Layers applied one after another onto one tree: whiteouts delete.
    Apply,
}

/// What an extraction did besides writing files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    pub entries: u64,
    pub skipped_devices: u64,
    pub skipped_whiteouts: u64,
}

/// Why an archive was refused. The destination may hold a partial tree; the
/// caller extracts into a temporary directory and discards it.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("archive entry `{path}`: {source}")]
    Entry {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the archive")]
    Read(#[source] io::Error),
}

/// Opens a possibly compressed tar stream (gzip, zstd, xz, bzip2 or none),
/// recognised by its magic bytes.
pub fn decompress<'r>(reader: impl Read + 'r) -> io::Result<Box<dyn Read + 'r>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::bufread::XzDecoder::new(buffered))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::bufread::BzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    })
}

/// Whether a file looks like a tar archive (possibly compressed), the test
/// ADD applies before extracting a local source.
pub fn looks_like_archive(path: &std::path::Path) -> io::Result<bool> {
    let file = std::fs::File::open(path)?;
    let mut reader = decompress(file)?;
    let mut block = [0u8; 512];
    let mut filled = 0;
    while filled < block.len() {
        match reader.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            // A compressed file that does not decompress is not an archive.
            Err(_) => return Ok(false),
        }
    }
    Ok(filled == 512 && &block[257..262] == b"ustar")
}

/// Extracts `archive` into `dest_root` (below `dest_dir`, for ADD).
pub fn unpack(
    archive: impl Read,
    root: &Root,
    dest_dir: &[&str],
    flavor: Flavor,
) -> Result<UnpackReport, UnpackError> {
    let mut report = UnpackReport::default();
    let mut tar = tar::Archive::new(archive);
    let mut dir_times: Vec<(String, i64)> = Vec::new();
    for entry in tar.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let fail = |source: io::Error| UnpackError::Entry {
            path: raw_path.clone(),
            source,
        };
        let entry_parts = components(&raw_path).map_err(fail)?;
        let mut parts: Vec<&str> = dest_dir.to_vec();
        parts.extend(entry_parts.iter().copied());
        report.entries += 1;
        let Some(name) = parts.last().copied() else {
            // The archive's `./` entry: the destination itself.
            continue;
        };
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if flavor == Flavor::Plain {
                report.skipped_whiteouts += 1;
                continue;
            }
            let dirs = &parts[..parts.len() - 1];
            let dir = root.mkdir_all(dirs, 0o755, None).map_err(fail)?;
            if flavor == Flavor::Apply {
                if name == OPAQUE_MARKER {
                    let host = Root::host_path(&dir).map_err(fail)?;
                    for child in std::fs::read_dir(&host).map_err(fail)? {
                        let child = child.map_err(fail)?;
                        confined::remove_at(&dir, &child.file_name().to_string_lossy())
                            .map_err(fail)?;
                    }
                } else {
                    confined::remove_at(&dir, hidden).map_err(fail)?;
                }
                continue;
            }
            if name == OPAQUE_MARKER {
                rfs::fsetxattr(
                    &reopen_dir(&dir).map_err(fail)?,
                    OVERLAY_OPAQUE_XATTR,
                    b"y",
                    rfs::XattrFlags::empty(),
                )
                .map_err(|e| fail(e.into()))?;
            } else {
                confined::remove_at(&dir, hidden).map_err(fail)?;
                rfs::mknodat(
                    &dir,
                    hidden,
                    rfs::FileType::CharacterDevice,
                    Mode::empty(),
                    rfs::makedev(0, 0),
                )
                .map_err(|e| fail(e.into()))?;
            }
            continue;
        }
        let header = entry.header().clone();
        let mode = header.mode().map_err(fail)? & 0o7777;
        let uid = header.uid().map_err(fail)? as u32;
        let gid = header.gid().map_err(fail)? as u32;
        let mtime = header.mtime().map_err(fail)? as i64;
        let xattrs = pax_xattrs(&mut entry).map_err(fail)?;
        let (dir, name) = root.parent(&parts).map_err(fail)?;
        let kind = header.entry_type();
        let existing = confined::lstat_at(&dir, name).map_err(fail)?;
        // A directory over a directory keeps its contents; anything else
        // replaces what was there.
        let keep_existing_dir = kind.is_dir() && existing.as_ref().is_some_and(confined::is_dir);
        if existing.is_some() && !keep_existing_dir {
            confined::remove_at(&dir, name).map_err(fail)?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !keep_existing_dir {
                    rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| fail(e.into()))?;
                }
                let fd = rfs::openat(
                    &dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| fail(e.into()))?;
                set_owner_mode_xattrs(&fd, uid, gid, mode, &xattrs).map_err(fail)?;
                dir_times.push((parts.join("/"), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rfs::openat(
                    &dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| fail(e.into()))?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).map_err(fail)?;
                set_owner_mode_xattrs(&file, uid, gid, mode, &xattrs).map_err(fail)?;
                let ts = rfs::Timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                };
                rfs::futimens(
                    &file,
                    &rfs::Timestamps {
                        last_access: ts,
                        last_modification: ts,
                    },
                )
                .map_err(|e| fail(e.into()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    fail(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "symlink without target",
                    ))
                })?;
                rfs::symlinkat(target.as_ref(), &dir, name).map_err(|e| fail(e.into()))?;
                confined::chown_at(&dir, name, uid, gid).map_err(fail)?;
                confined::set_mtime_at(&dir, name, mtime).map_err(fail)?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    fail(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "hard link without target",
                    ))
                })?;
                let target = String::from_utf8_lossy(&target).into_owned();
                let mut target_parts: Vec<&str> = dest_dir.to_vec();
                target_parts.extend(components(&target).map_err(fail)?);
                let (tdir, tname) = match target_parts.split_last() {
                    Some((n, dirs)) => (root.open_dir(dirs).map_err(fail)?, *n),
                    None => {
                        return Err(fail(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "hard link to the root",
                        )));
                    }
                };
                rfs::linkat(&tdir, tname, &dir, name, rfs::AtFlags::empty()).map_err(|e| {
                    fail(io::Error::new(
                        io::Error::from(e).kind(),
                        format!("hard link to `{target}`: {e}"),
                    ))
                })?;
            }
            tar::EntryType::Fifo => {
                rfs::mknodat(
                    &dir,
                    name,
                    rfs::FileType::Fifo,
                    Mode::from_raw_mode(mode),
                    0,
                )
                .map_err(|e| fail(e.into()))?;
                confined::chown_at(&dir, name, uid, gid).map_err(fail)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => report.skipped_devices += 1,
            // PAX and GNU metadata entries are consumed by the tar crate;
            // anything else carries nothing kiln can place.
            _ => {}
        }
    }
    // Directory times last: creating children changed them.
    for (path, mtime) in dir_times.iter().rev() {
        let parts: Vec<&str> = path.split('/').collect();
        if let Ok((dir, name)) = root.parent(&parts) {
            confined::set_mtime_at(&dir, name, *mtime).map_err(|source| UnpackError::Entry {
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(report)
}

fn reopen_dir(fd: &impl AsFd) -> io::Result<std::os::fd::OwnedFd> {
    Ok(rfs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Extended attributes carried as PAX `SCHILY.xattr.*` records, except the
/// overlay's own, which an archive must not be able to set.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr."))
                && !name.starts_with("trusted.overlay.")
                && !name.starts_with("user.overlay.")
            {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

fn set_owner_mode_xattrs(
    fd: &impl AsFd,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
) -> io::Result<()> {
    rfs::fchown(
        fd,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
    )?;
    // After chown, which clears set-id bits.
    rfs::fchmod(fd, Mode::from_raw_mode(mode))?;
    for (name, value) in xattrs {
        rfs::fsetxattr(fd, name.as_str(), value, rfs::XattrFlags::empty())?;
    }
    Ok(())
}
