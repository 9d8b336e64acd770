//! Layers case by case: trees written from text fixtures, committed to tar,
//! unpacked back, compared as text.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use super::commit::write_tar;
use super::confined::Root;
use super::unpack::{Flavor, unpack};

/// Builds a tree from lines: `d PATH MODE`, `f PATH MODE TEXT`,
/// `l PATH TARGET`, `w PATH` (whiteout), `o PATH` (opaque directory),
/// `h PATH EXISTING` (hard link).
fn make_tree(root: &Path, fixture: &str) {
    for line in fixture.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut f = line.splitn(4, ' ');
        let (kind, path) = (f.next().unwrap(), root.join(f.next().unwrap()));
        match kind {
            "d" | "o" => {
                fs::create_dir_all(&path).unwrap();
                if let Some(mode) = f.next() {
                    fs::set_permissions(
                        &path,
                        fs::Permissions::from_mode(u32::from_str_radix(mode, 8).unwrap()),
                    )
                    .unwrap();
                }
                if kind == "o" {
                    xattr::set(&path, "trusted.overlay.opaque", b"y").unwrap();
                }
            }
            "f" => {
                let mode = u32::from_str_radix(f.next().unwrap(), 8).unwrap();
                fs::write(&path, f.next().unwrap_or("")).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            "l" => symlink(f.next().unwrap(), &path).unwrap(),
            "h" => fs::hard_link(root.join(f.next().unwrap()), &path).unwrap(),
            "w" => rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                0,
            )
            .unwrap(),
            other => panic!("unknown fixture kind {other}"),
        }
    }
}

/// The tree in the same text form (sorted; `w` and `o` recognised).
fn describe(root: &Path) -> String {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let m = e.path().symlink_metadata().unwrap();
        let mode = m.mode() & 0o7777;
        use std::os::unix::fs::FileTypeExt;
        let ft = m.file_type();
        out.push(if ft.is_dir() {
            let opaque = xattr::get(e.path(), "trusted.overlay.opaque")
                .unwrap()
                .as_deref()
                == Some(b"y");
            format!("{} {rel} {mode:o}", if opaque { "o" } else { "d" })
        } else if ft.is_symlink() {
            format!("l {rel} {}", fs::read_link(e.path()).unwrap().display())
        } else if ft.is_char_device() && m.rdev() == 0 {
            format!("w {rel}")
        } else {
            format!("f {rel} {mode:o} {}", fs::read_to_string(e.path()).unwrap())
        });
    }
    out.join("\n")
}

/// `TYPE PATH [-> LINK]` for every tar entry, in order.
fn list_tar(bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let t = match e.header().entry_type() {
                tar::EntryType::Directory => "d",
                tar::EntryType::Symlink => "l",
                tar::EntryType::Link => "h",
                _ => "f",
            };
            match e.link_name_bytes() {
                Some(l) => format!("{t} {path} -> {}", String::from_utf8_lossy(&l)),
                None => format!("{t} {path}"),
            }
        })
        .collect()
}

/// Unpacks a layer tar into `dst` as an overlay lower directory.
fn unpack_layer(bytes: &[u8], dst: &Path) {
    unpack(bytes, &Root::open(dst).unwrap(), &[], Flavor::Overlay).unwrap();
}

fn tar_of(root: &Path, epoch: Option<i64>) -> Vec<u8> {
    let mut out = Vec::new();
    write_tar(root, &mut out, epoch).unwrap();
    out
}

fn roundtrip(fixture: &str) -> (Vec<String>, String) {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    make_tree(&src, fixture);
    let bytes = tar_of(&src, None);
    unpack_layer(&bytes, &dst);
    assert_eq!(
        describe(&src),
        describe(&dst),
        "round trip changed the tree"
    );
    (list_tar(&bytes), describe(&dst))
}

#[test]
fn whiteout_becomes_wh_entry_and_back() {
    let (entries, _) = roundtrip("d etc 755\nw etc/passwd");
    assert_eq!(entries, ["d etc/", "f etc/.wh.passwd"]);
}

#[test]
fn opaque_dir_gets_marker_first() {
    let (entries, _) = roundtrip("o var 755\nf var/new 644 x");
    assert_eq!(entries, ["d var/", "f var/.wh..wh..opq", "f var/new"]);
}

#[test]
fn whiteout_at_top_level() {
    let (entries, _) = roundtrip("w gone");
    assert_eq!(entries, ["f .wh.gone"]);
}

#[test]
fn whiteout_of_a_directory_and_opaque_nested() {
    let (entries, tree) = roundtrip("d a 700\nw a/sub\no a/b 750\nw a/b/c");
    assert_eq!(
        entries,
        [
            "d a/",
            "d a/b/",
            "f a/b/.wh..wh..opq",
            "f a/b/.wh.c",
            "f a/.wh.sub"
        ]
    );
    assert!(tree.contains("o a/b 750"));
}

#[test]
fn symlinks_hardlinks_modes() {
    let (entries, tree) =
        roundtrip("d bin 755\nf bin/tool 4755 #!\nh bin/alias bin/tool\nl sh /bin/tool");
    assert_eq!(
        entries,
        [
            "d bin/",
            "f bin/alias",
            "h bin/tool -> bin/alias",
            "l sh -> /bin/tool"
        ]
    );
    assert!(tree.contains("f bin/tool 4755"), "{tree}");
}

#[test]
fn capabilities_travel_as_pax_xattrs() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    make_tree(&src, "f ping 755 x");
    // A v2 file capability: cap_net_raw permitted and effective.
    let cap: [u8; 20] = [
        0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    xattr::set(src.join("ping"), "security.capability", &cap).unwrap();
    let bytes = tar_of(&src, None);
    unpack_layer(&bytes, &dst);
    assert_eq!(
        xattr::get(dst.join("ping"), "security.capability")
            .unwrap()
            .as_deref(),
        Some(&cap[..])
    );
}

#[test]
fn tars_are_deterministic_and_clamped() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src, "d b 755\nf b/z 644 z\nf a 600 a");
    let one = tar_of(&src, Some(1_000));
    let two = tar_of(&src, Some(1_000));
    assert_eq!(one, two);
    let mut a = tar::Archive::new(one.as_slice());
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 1_000);
        assert_eq!(e.header().uid().unwrap(), 0);
        assert!(e.header().username().unwrap().unwrap_or("").is_empty());
    }
    assert_ne!(
        tar_of(&src, None),
        one,
        "without an epoch, real mtimes are kept"
    );
}

#[test]
fn apply_flavor_deletes_what_whiteouts_name() {
    let t = tempfile::tempdir().unwrap();
    let (l1, l2, dst) = (
        t.path().join("l1"),
        t.path().join("l2"),
        t.path().join("dst"),
    );
    for d in [&l1, &l2, &dst] {
        fs::create_dir(d).unwrap();
    }
    make_tree(
        &l1,
        "d etc 755\nf etc/keep 644 k\nf etc/drop 644 d\nd var 755\nf var/old 644 o",
    );
    make_tree(&l2, "d etc 755\nw etc/drop\no var 755\nf var/new 644 n");
    let root = Root::open(&dst).unwrap();
    for layer in [&l1, &l2] {
        unpack(tar_of(layer, None).as_slice(), &root, &[], Flavor::Apply).unwrap();
    }
    assert_eq!(
        describe(&dst),
        "d etc 755\nf etc/keep 644 k\nd var 755\nf var/new 644 n"
    );
}

#[test]
fn plain_flavor_skips_whiteouts_and_extracts_below_a_directory() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    make_tree(&src, "f x 644 1\nw y");
    let report = unpack(
        tar_of(&src, None).as_slice(),
        &Root::open(&dst).unwrap(),
        &["opt", "into"],
        Flavor::Plain,
    )
    .unwrap();
    assert_eq!(report.skipped_whiteouts, 1);
    assert_eq!(
        describe(&dst),
        "d opt 755\nd opt/into 755\nf opt/into/x 644 1"
    );
}

#[test]
fn compressed_layers_decompress_by_magic() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src, "f a 644 hello");
    for compression in [
        super::commit::Compression::Gzip,
        super::commit::Compression::Zstd,
    ] {
        let out = tempfile::tempfile().unwrap();
        let (mut file, written) = super::commit::write_layer(&src, out, compression).unwrap();
        use std::io::Seek;
        file.rewind().unwrap();
        let mut raw = Vec::new();
        super::unpack::decompress(file)
            .unwrap()
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(crate::digest::sha256_of(&raw), written.diff_id);
        assert_eq!(list_tar(&raw), ["f a"]);
    }
}

#[test]
fn parallel_gzip_does_not_depend_on_thread_count() {
    use std::io::Write;
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 17)
        .collect();
    let compress = |threads| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut gz = super::commit::parallel_gzip(Shared(buf.clone()), threads).unwrap();
        gz.write_all(&data).unwrap();
        use gzp::ZWriter;
        gz.finish().unwrap();
        buf.lock().unwrap().clone()
    };
    let one = compress(1);
    assert_eq!(one, compress(2));
    assert_eq!(one, compress(4));
    let mut back = Vec::new();
    flate2::read::MultiGzDecoder::new(one.as_slice())
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
}
