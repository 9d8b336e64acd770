//! Mountpoints without traces.
//!
//! A build mount's target often does not exist in the image (think
//! `/run/secrets/token`). Creating it in the step's upper directory would put
//! it in the layer, so kiln instead puts it in one extra, throwaway lower
//! directory on top of the image's layers. Only what is missing is created
//! there; ancestors that exist are repeated with their own owner, mode and
//! mtime so that a copy-up in the step sees the image's metadata.
//!
//! Paths are resolved against the union of the lower directories, following
//! the image's symlinks inside the image, never on the host.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::layer::unpack::OVERLAY_OPAQUE_XATTR;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Dir,
    File,
}

/// What the union of the lowers holds at a path.
#[derive(Debug)]
enum Found {
    Absent,
    Dir(fs::Metadata),
    File,
    Symlink(String),
}

/// Looks `parts` up in `lowers` (top first) with overlay's rules.
fn lookup(lowers: &[PathBuf], parts: &[String]) -> io::Result<Found> {
    'lower: for lower in lowers {
        let mut path = lower.clone();
        let mut last_layer = false;
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let meta = match path.symlink_metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'lower,
                Err(e) => return Err(e),
            };
            let ft = meta.file_type();
            if ft.is_char_device() && meta.rdev() == 0 {
                return Ok(Found::Absent);
            }
            if i + 1 == parts.len() {
                return Ok(if ft.is_dir() {
                    Found::Dir(meta)
                } else if ft.is_symlink() {
                    Found::Symlink(fs::read_link(&path)?.to_string_lossy().into_owned())
                } else {
                    Found::File
                });
            }
            if !ft.is_dir() {
                // A non-directory hides the rest of the path below it.
                return Ok(Found::Absent);
            }
            if xattr::get(&path, OVERLAY_OPAQUE_XATTR)?.as_deref() == Some(b"y") {
                last_layer = true;
            }
        }
        if last_layer {
            break;
        }
    }
    Ok(if parts.is_empty() {
        Found::Dir(fs::metadata(&lowers[0])?)
    } else {
        Found::Absent
    })
}

/// Resolves `path` in the union, following symlinks the way the kernel
/// would inside the container; the result has no symlinks.
pub fn resolve(lowers: &[PathBuf], path: &str) -> io::Result<Vec<String>> {
    let mut resolved: Vec<String> = Vec::new();
    let mut queue: std::collections::VecDeque<String> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(String::from)
        .collect();
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        resolved.push(part);
        if lowers.is_empty() {
            continue;
        }
        if let Found::Symlink(target) = lookup(lowers, &resolved)? {
            hops += 1;
            if hops > 40 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("too many symlinks resolving `{path}`"),
                ));
            }
            resolved.pop();
            if target.starts_with('/') {
                resolved.clear();
            }
            for (i, c) in target
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .enumerate()
            {
                queue.insert(i, c.to_string());
            }
        }
    }
    Ok(resolved)
}

/// Makes sure `target` exists (as `kind`) in the union of `lowers` plus
/// `placeholder`, creating only what is missing inside `placeholder`.
/// Returns the resolved, symlink-free path to mount on.
pub fn ensure(
    lowers: &[PathBuf],
    placeholder: &Path,
    target: &str,
    kind: Kind,
) -> io::Result<String> {
    let mut all = vec![placeholder.to_path_buf()];
    all.extend(lowers.iter().cloned());
    let parts = resolve(&all, target)?;
    let done = format!("/{}", parts.join("/"));
    match (lookup(&all, &parts)?, kind) {
        (Found::Dir(_), Kind::Dir) | (Found::File, Kind::File) => return Ok(done),
        _ => {}
    }
    let mut host = placeholder.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        host.push(part);
        let is_leaf = i + 1 == parts.len();
        let found = lookup(&all, &parts[..=i])?;
        match (found, is_leaf, kind) {
            (Found::Dir(meta), false, _) | (Found::Dir(meta), true, Kind::Dir) => {
                if !host.exists() {
                    fs::DirBuilder::new().mode(0o755).create(&host)?;
                    copy_metadata(&host, &meta)?;
                }
            }
            (Found::File, true, Kind::File) => {}
            (Found::Absent, false, _) | (Found::Absent, true, Kind::Dir) => {
                fs::DirBuilder::new().mode(0o755).create(&host)?;
            }
            (Found::Absent, true, Kind::File) => {
                fs::File::create(&host)?;
                fs::set_permissions(&host, fs::Permissions::from_mode(0o644))?;
            }
            (found, _, _) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "mount target `{target}`: `/{}` is {found:?} in the image",
                        parts[..=i].join("/")
                    ),
                ));
            }
        }
    }
    Ok(done)
}

fn copy_metadata(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    filetime::set_file_mtime(path, filetime::FileTime::from_last_modification_time(meta))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Vec<PathBuf>, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("top");
        let bottom = t.path().join("bottom");
        let ph = t.path().join("ph");
        for d in [&top, &bottom, &ph] {
            fs::create_dir(d).unwrap();
        }
        fs::create_dir_all(bottom.join("run")).unwrap();
        fs::create_dir_all(bottom.join("root")).unwrap();
        fs::set_permissions(bottom.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir_all(top.join("var")).unwrap();
        symlink("/run", top.join("var/run")).unwrap();
        symlink("../../escape", top.join("climb")).unwrap();
        (t, vec![top, bottom], ph)
    }

    #[test]
    fn symlinks_resolve_inside_the_union() {
        let (_t, lowers, _) = tree();
        assert_eq!(
            resolve(&lowers, "/var/run/secrets").unwrap(),
            ["run", "secrets"]
        );
        assert_eq!(resolve(&lowers, "/climb/x").unwrap(), ["escape", "x"]);
    }

    #[test]
    fn only_missing_parts_are_created_with_image_metadata() {
        let (_t, lowers, ph) = tree();
        let at = ensure(&lowers, &ph, "/root/.cache/pip", Kind::Dir).unwrap();
        assert_eq!(at, "/root/.cache/pip");
        assert_eq!(fs::metadata(ph.join("root")).unwrap().mode() & 0o777, 0o700);
        assert!(ph.join("root/.cache/pip").is_dir());
        let at = ensure(&lowers, &ph, "/var/run/secrets/tok", Kind::File).unwrap();
        assert_eq!(at, "/run/secrets/tok");
        assert!(ph.join("run/secrets/tok").is_file());
        assert!(
            !ph.join("var").exists(),
            "the symlink's directory is not repeated"
        );
    }

    #[test]
    fn existing_targets_need_nothing() {
        let (_t, lowers, ph) = tree();
        ensure(&lowers, &ph, "/run", Kind::Dir).unwrap();
        assert_eq!(fs::read_dir(&ph).unwrap().count(), 0);
        assert!(ensure(&lowers, &ph, "/run", Kind::File).is_err());
    }
}
