//! COPY and ADD: choosing the source files (shared by the cache key and
//! the copy itself) and writing them into the root.
//!
//! Docker's rules: a directory source copies its contents; a file goes to
//! `DEST/NAME` when DEST ends in `/` (or there are several sources), else
//! to DEST itself; new files and directories belong to 0:0 unless
//! `--chown`; `--chmod` sets the mode of everything copied; a local tar
//! archive given to ADD is extracted. Every destination path goes through
//! [`Root`], so symlinks in the image cannot redirect a copy to the host.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rustix::fs::{self as rfs, Mode, OFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::frontend::pattern::{IgnoreRules, Pattern, clean_path};
use crate::layer::confined::{self, Root};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CopyItem {
    /// What `pattern` selects under `root` (the context or a source view).
    Tree {
        root: PathBuf,
        pattern: String,
        /// `.dockerignore` text (context sources only) and `--exclude`s.
        ignore: String,
        /// ADD: extract local tar archives instead of copying them.
        extract_archives: bool,
    },
    /// A single file with prepared contents (heredocs, downloads).
    File {
        host: PathBuf,
        name: String,
        mode: u32,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyPlan {
    pub items: Vec<CopyItem>,
    /// Absolute path in the root.
    pub dest: String,
    pub dest_is_dir: bool,
    pub owner: Option<String>,
    pub chmod: Option<u32>,
}

/// Why a COPY source could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{0}` not found in the build context (or excluded by .dockerignore)")]
    NotFound(String),
    #[error("source `{0}` matched no files")]
    NoMatch(String),
    #[error("source `{pattern}` is outside the build context")]
    Outside { pattern: String },
}

/// One selected source path, relative to its root ("" for the root).
#[derive(Debug, Clone)]
pub struct Selected {
    pub rel: String,
    pub is_dir: bool,
}

/// The top-level paths `pattern` selects under `root`.
pub fn select(root: &Path, pattern: &str, ignore: &IgnoreRules) -> anyhow::Result<Vec<Selected>> {
    if pattern.split('/').any(|c| c == "..")
        && clean_path(pattern) != clean_path(&pattern.replace("..", ""))
    {
        // `..` cannot leave the root lexically (clean_path clamps), but a
        // pattern that tries is almost certainly a mistake worth naming.
        if clean_path(pattern).is_empty() && pattern.trim_matches('/') != "." {
            return Err(SourceError::Outside {
                pattern: pattern.to_string(),
            }
            .into());
        }
    }
    let confined = Root::open(root)?;
    if !Pattern::is_glob(pattern) {
        let rel = clean_path(pattern);
        if !rel.is_empty() && ignore.is_ignored(&rel) {
            return Err(SourceError::NotFound(pattern.to_string()).into());
        }
        let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        // Top-level symlinks are followed, inside the root.
        let is_dir = match confined.open_dir(&parts) {
            Ok(_) => true,
            Err(_) => match confined.open_file(&parts) {
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(SourceError::NotFound(pattern.to_string()).into());
                }
                Err(e) => return Err(e).with_context(|| format!("opening source `{pattern}`")),
            },
        };
        return Ok(vec![Selected { rel, is_dir }]);
    }
    let compiled = Pattern::new(pattern);
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry?;
        let rel = entry
            .path()
            .strip_prefix(root)?
            .to_string_lossy()
            .into_owned();
        if compiled.matches(&rel) && !ignore.is_ignored(&rel) {
            let is_dir = entry.file_type().is_dir()
                || (entry.file_type().is_symlink()
                    && confined
                        .open_dir(&rel.split('/').collect::<Vec<_>>())
                        .is_ok());
            out.push(Selected { rel, is_dir });
        }
    }
    if out.is_empty() {
        return Err(SourceError::NoMatch(pattern.to_string()).into());
    }
    Ok(out)
}

/// Host paths of everything under a selected directory, sorted, relative
/// to the directory, skipping ignored ones.
fn walk_dir(
    root: &Path,
    sel: &Selected,
    ignore: &IgnoreRules,
) -> anyhow::Result<Vec<(String, fs::Metadata)>> {
    let confined = Root::open(root)?;
    let parts: Vec<&str> = sel.rel.split('/').filter(|c| !c.is_empty()).collect();
    let dir_fd = confined.open_dir(&parts)?;
    let base = Root::host_path(&dir_fd)?;
    let mut out = Vec::new();
    let mut walker = walkdir::WalkDir::new(&base)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = entry?;
        let sub = entry
            .path()
            .strip_prefix(&base)?
            .to_string_lossy()
            .into_owned();
        let ctx_rel = if sel.rel.is_empty() {
            sub.clone()
        } else {
            format!("{}/{sub}", sel.rel)
        };
        if ignore.is_ignored(&ctx_rel) {
            if entry.file_type().is_dir() && !ignore.may_reinclude_below(&ctx_rel) {
                walker.skip_current_dir();
            }
            continue;
        }
        out.push((sub, entry.path().symlink_metadata()?));
    }
    Ok(out)
}

/// A digest of everything a COPY item would read: names, types, modes,
/// symlink targets and file contents (not owners or times, which COPY
/// does not keep).
pub fn hash_item(item: &CopyItem, hasher: &mut Sha256) -> anyhow::Result<()> {
    match item {
        CopyItem::File { host, name, mode } => {
            hasher.update(format!("file {name} {mode:o}\n"));
            hasher.update(fs::read(host)?);
        }
        CopyItem::Tree {
            root,
            pattern,
            ignore,
            extract_archives,
        } => {
            let rules = IgnoreRules::parse(ignore);
            hasher.update(format!("tree {pattern} {extract_archives}\n"));
            let confined = Root::open(root)?;
            for sel in select(root, pattern, &rules)? {
                let parts: Vec<&str> = sel.rel.split('/').filter(|c| !c.is_empty()).collect();
                if sel.is_dir {
                    hasher.update(format!("dir {}\n", sel.rel));
                    let dir = Root::host_path(&confined.open_dir(&parts)?)?;
                    for (sub, meta) in walk_dir(root, &sel, &rules)? {
                        hash_entry(hasher, &sub, &dir.join(&sub), &meta)?;
                    }
                } else {
                    let mut file = confined.open_file(&parts)?;
                    let meta = file.metadata()?;
                    hasher.update(format!(
                        "file {} {:o} {}\n",
                        sel.rel,
                        meta.mode() & 0o7777,
                        meta.len()
                    ));
                    io::copy(&mut file, hasher)?;
                }
            }
        }
    }
    Ok(())
}

fn hash_entry(
    hasher: &mut Sha256,
    rel: &str,
    path: &Path,
    meta: &fs::Metadata,
) -> anyhow::Result<()> {
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    if ft.is_dir() {
        hasher.update(format!("d {rel} {mode:o}\n"));
    } else if ft.is_symlink() {
        hasher.update(format!("l {rel} {}\n", fs::read_link(path)?.display()));
    } else if ft.is_file() {
        hasher.update(format!("f {rel} {mode:o} {}\n", meta.len()));
        io::copy(&mut fs::File::open(path)?, hasher)?;
    } else {
        hasher.update(format!("o {rel} {mode:o}\n"));
    }
    Ok(())
}

/// Executes a COPY/ADD in the sandbox helper.
pub fn execute(root: &Root, plan: &CopyPlan) -> anyhow::Result<()> {
    let (uid, gid) = match &plan.owner {
        None => (0, 0),
        Some(spec) => owner_ids(root, spec)?,
    };
    let dest_parts: Vec<String> = plan
        .dest
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let dest: Vec<&str> = dest_parts.iter().map(String::as_str).collect();
    let w = Writer {
        root,
        uid,
        gid,
        chmod: plan.chmod,
    };
    // `COPY file /existing/dir` puts the file inside, as Docker does.
    let dest_is_dir = plan.dest_is_dir || dest.is_empty() || root.open_dir(&dest).is_ok();
    for item in &plan.items {
        match item {
            CopyItem::File { host, name, mode } => {
                let target = if dest_is_dir {
                    join(&dest, name)
                } else {
                    dest.iter().map(|s| s.to_string()).collect()
                };
                let meta = fs::metadata(host)?;
                w.ensure_parents(&target)?;
                w.file(&target, host, *mode, meta.mtime())?;
            }
            CopyItem::Tree {
                root: src_root,
                pattern,
                ignore,
                extract_archives,
            } => {
                let rules = IgnoreRules::parse(ignore);
                let src = Root::open(src_root)?;
                let selected = select(src_root, pattern, &rules)?;
                if selected.len() > 1 && !dest_is_dir {
                    bail!(
                        "`{pattern}` matches {} paths: the destination `{}` must be a directory ending in `/`",
                        selected.len(),
                        plan.dest
                    );
                }
                for sel in selected {
                    let parts: Vec<&str> = sel.rel.split('/').filter(|c| !c.is_empty()).collect();
                    if sel.is_dir {
                        w.dir_all(&dest)?;
                        let base = Root::host_path(&src.open_dir(&parts)?)?;
                        for (sub, meta) in walk_dir(src_root, &sel, &rules)? {
                            let mut target: Vec<String> = dest_parts.clone();
                            target.extend(sub.split('/').map(String::from));
                            w.entry(&target, &base.join(&sub), &meta)?;
                        }
                        continue;
                    }
                    let file = src.open_file(&parts)?;
                    let host = Root::host_path(&file)?;
                    if *extract_archives && crate::layer::unpack::looks_like_archive(&host)? {
                        w.dir_all(&dest)?;
                        let reader = crate::layer::unpack::decompress(fs::File::open(&host)?)?;
                        crate::layer::unpack::unpack(
                            reader,
                            root,
                            &dest,
                            crate::layer::unpack::Flavor::Plain,
                        )
                        .with_context(|| format!("extracting `{}`", sel.rel))?;
                        continue;
                    }
                    let name = parts.last().copied().unwrap_or("");
                    let target = if dest_is_dir {
                        join(&dest, name)
                    } else {
                        dest_parts.clone()
                    };
                    let meta = file.metadata()?;
                    w.ensure_parents(&target)?;
                    w.file(&target, &host, meta.mode() & 0o7777, meta.mtime())?;
                }
            }
        }
    }
    Ok(())
}

fn join(dest: &[&str], name: &str) -> Vec<String> {
    let mut v: Vec<String> = dest.iter().map(|s| s.to_string()).collect();
    v.push(name.to_string());
    v
}

/// `--chown` ids, resolved against the image's own passwd and group files.
fn owner_ids(root: &Root, spec: &str) -> anyhow::Result<(u32, u32)> {
    let read = |p: &[&str]| -> anyhow::Result<String> {
        match root.open_file(p) {
            Ok(mut f) => {
                let mut s = String::new();
                io::Read::read_to_string(&mut f, &mut s)?;
                Ok(s)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e.into()),
        }
    };
    let passwd = read(&["etc", "passwd"])?;
    let group = read(&["etc", "group"])?;
    let id = super::users::resolve(spec, &passwd, &group)?;
    // Docker: a user without a group gets the same number as gid.
    let gid = if spec.contains(':') { id.gid } else { id.uid };
    Ok((id.uid, gid))
}

struct Writer<'r> {
    root: &'r Root,
    uid: u32,
    gid: u32,
    chmod: Option<u32>,
}

impl Writer<'_> {
    fn ensure_parents(&self, target: &[String]) -> anyhow::Result<()> {
        let parts: Vec<&str> = target.iter().map(String::as_str).collect();
        if parts.len() > 1 {
            self.root
                .mkdir_all(&parts[..parts.len() - 1], 0o755, Some((self.uid, self.gid)))?;
        }
        Ok(())
    }

    fn dir_all(&self, parts: &[&str]) -> anyhow::Result<()> {
        self.root
            .mkdir_all(parts, 0o755, Some((self.uid, self.gid)))?;
        Ok(())
    }

    fn entry(&self, target: &[String], host: &Path, meta: &fs::Metadata) -> anyhow::Result<()> {
        let ft = meta.file_type();
        let mode = meta.mode() & 0o7777;
        if ft.is_dir() {
            let parts: Vec<&str> = target.iter().map(String::as_str).collect();
            let (dir, name) = self.root.parent(&parts)?;
            match confined::lstat_at(&dir, name)? {
                Some(st) if confined::is_dir(&st) => {}
                Some(_) => {
                    confined::remove_at(&dir, name)?;
                    rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))?;
                }
                None => rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))?,
            }
            confined::chown_at(&dir, name, self.uid, self.gid)?;
            let fd = rfs::openat(
                &dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            rfs::fchmod(&fd, Mode::from_raw_mode(self.chmod.unwrap_or(mode)))?;
            confined::set_mtime_at(&dir, name, meta.mtime())?;
        } else if ft.is_symlink() {
            let parts: Vec<&str> = target.iter().map(String::as_str).collect();
            let (dir, name) = self.root.parent(&parts)?;
            confined::remove_at(&dir, name)?;
            rfs::symlinkat(fs::read_link(host)?.as_os_str(), &dir, name)?;
            confined::chown_at(&dir, name, self.uid, self.gid)?;
            confined::set_mtime_at(&dir, name, meta.mtime())?;
        } else if ft.is_file() {
            self.file(target, host, mode, meta.mtime())?;
        }
        // Sockets, fifos and devices in a source tree are not copied.
        Ok(())
    }

    fn file(&self, target: &[String], host: &Path, mode: u32, mtime: i64) -> anyhow::Result<()> {
        let parts: Vec<&str> = target.iter().map(String::as_str).collect();
        if parts.is_empty() {
            bail!("cannot copy a file onto `/`");
        }
        let (dir, name) = self.root.parent(&parts)?;
        if let Some(st) = confined::lstat_at(&dir, name)? {
            if confined::is_dir(&st) {
                bail!(
                    "cannot copy file `{}` over directory `/{}`",
                    host.display(),
                    parts.join("/")
                );
            }
            confined::remove_at(&dir, name)?;
        }
        let fd = rfs::openat(
            &dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut out = fs::File::from(fd);
        io::copy(&mut fs::File::open(host)?, &mut out)?;
        rfs::fchown(
            &out,
            Some(rfs::Uid::from_raw(self.uid)),
            Some(rfs::Gid::from_raw(self.gid)),
        )?;
        out.set_permissions(fs::Permissions::from_mode(self.chmod.unwrap_or(mode)))?;
        let ts = rfs::Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        rfs::futimens(
            &out,
            &rfs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
        )?;
        Ok(())
    }
}
