//! File operations confined to a root directory.
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`:
//! `..`, absolute symlinks and relative symlinks that climb out all stay
//! inside the root, whatever an archive or a build context contains. The
//! final component of a path is never followed; it is created with the
//! `*at` calls on the parent's descriptor.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};

/// Splits an archive or copy path into components: leading `/` and `./`
/// are dropped; `..` is refused, since no honest layer needs it.
pub fn components(path: &str) -> io::Result<Vec<&str>> {
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("path `{path}` contains `..`"),
                ));
            }
            p => out.push(p),
        }
    }
    Ok(out)
}

/// A directory that paths cannot escape.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn resolve(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        Ok(rfs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?)
    }

    /// Opens a directory inside the root (symlinks followed, in root).
    pub fn open_dir(&self, parts: &[&str]) -> io::Result<OwnedFd> {
        self.resolve(&parts.join("/"), OFlags::PATH | OFlags::DIRECTORY)
    }

    /// Opens a directory for reading entries.
    pub fn open_dir_readable(&self, parts: &[&str]) -> io::Result<OwnedFd> {
        self.resolve(&parts.join("/"), OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// Opens a file for reading, following symlinks inside the root.
    pub fn open_file(&self, parts: &[&str]) -> io::Result<std::fs::File> {
        Ok(self.resolve(&parts.join("/"), OFlags::RDONLY)?.into())
    }

    /// Opens (creating with `mode`, owned by `owner`) every directory of
    /// `parts`, and returns the last one.
    pub fn mkdir_all(
        &self,
        parts: &[&str],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<OwnedFd> {
        match self.open_dir(parts) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut fd = self.open_dir(&[])?;
        for i in 0..parts.len() {
            match self.open_dir(&parts[..=i]) {
                Ok(next) => fd = next,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rfs::mkdirat(&fd, parts[i], Mode::from_raw_mode(mode)) {
                        Ok(()) => {}
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    if let Some((uid, gid)) = owner {
                        chown_at(&fd, parts[i], uid, gid)?;
                    }
                    // Re-resolve from the root: the new directory is a
                    // plain directory, but the walk stays uniform.
                    fd = self.open_dir(&parts[..=i])?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(fd)
    }

    /// The parent directory of `parts` (created as needed) and the name.
    pub fn parent<'p>(&self, parts: &[&'p str]) -> io::Result<(OwnedFd, &'p str)> {
        let (name, dirs) = parts.split_last().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the root itself has no parent")
        })?;
        Ok((self.mkdir_all(dirs, 0o755, None)?, name))
    }

    /// The real host path of a descriptor opened inside this root.
    pub fn host_path(fd: &impl AsFd) -> io::Result<PathBuf> {
        let link = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())
        );
        std::fs::read_link(link)
    }
}

/// What is at `name` in `dir`, without following a symlink.
pub fn lstat_at(dir: &impl AsFd, name: &str) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn is_dir(st: &rfs::Stat) -> bool {
    rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory
}

/// Removes whatever is at `name` in `dir` (a whole tree for a directory),
/// never following a symlink.
pub fn remove_at(dir: &impl AsFd, name: &str) -> io::Result<()> {
    match lstat_at(dir, name)? {
        None => Ok(()),
        Some(st) if is_dir(&st) => {
            let real = Root::host_path(dir)?.join(name);
            std::fs::remove_dir_all(real)
        }
        Some(_) => Ok(rfs::unlinkat(dir, name, AtFlags::empty())?),
    }
}

pub fn chown_at(dir: &impl AsFd, name: &str, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Sets the modification (and access) time without following a symlink.
pub fn set_mtime_at(dir: &impl AsFd, name: &str, mtime: i64) -> io::Result<()> {
    let ts = rfs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = rfs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    Ok(rfs::utimensat(
        dir,
        name,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

pub fn os(name: &str) -> &OsStr {
    OsStr::from_bytes(name.as_bytes())
}
