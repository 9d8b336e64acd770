//! A corpus of hostile archives against the unpacker, `kiln import` and
//! `ADD`: whatever the paths, links or devices, nothing is written outside
//! the root.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// One raw tar entry, written by hand so that nothing sanitises the names.
struct Entry {
    name: String,
    kind: u8,
    link: String,
    data: Vec<u8>,
    mode: u32,
    dev: (u32, u32),
}

fn file(name: &str, data: &str) -> Entry {
    Entry {
        name: name.into(),
        kind: b'0',
        link: String::new(),
        data: data.as_bytes().to_vec(),
        mode: 0o644,
        dev: (0, 0),
    }
}
fn dir(name: &str) -> Entry {
    Entry {
        name: name.into(),
        kind: b'5',
        link: String::new(),
        data: Vec::new(),
        mode: 0o755,
        dev: (0, 0),
    }
}
fn symlink(name: &str, target: &str) -> Entry {
    Entry {
        name: name.into(),
        kind: b'2',
        link: target.into(),
        data: Vec::new(),
        mode: 0o777,
        dev: (0, 0),
    }
}
fn hardlink(name: &str, target: &str) -> Entry {
    Entry {
        name: name.into(),
        kind: b'1',
        link: target.into(),
        data: Vec::new(),
        mode: 0o644,
        dev: (0, 0),
    }
}
fn device(name: &str, kind: u8, major: u32, minor: u32) -> Entry {
    Entry {
        name: name.into(),
        kind,
        link: String::new(),
        data: Vec::new(),
        mode: 0o666,
        dev: (major, minor),
    }
}
fn pax(records: &[(&str, &str)]) -> Entry {
    let mut data = String::new();
    for (k, v) in records {
        let body = format!(" {k}={v}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        data.push_str(&format!("{len}{body}"));
    }
    Entry {
        name: "PaxHeader".into(),
        kind: b'x',
        link: String::new(),
        data: data.into_bytes(),
        mode: 0o644,
        dev: (0, 0),
    }
}
fn gnu_longname(name: &str) -> Entry {
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    Entry {
        name: "././@LongLink".into(),
        kind: b'L',
        link: String::new(),
        data,
        mode: 0o644,
        dev: (0, 0),
    }
}

fn octal(buf: &mut [u8], value: u64) {
    let s = format!("{:0width$o}\0", value, width = buf.len() - 1);
    buf.copy_from_slice(s.as_bytes());
}

fn write_tar(path: &Path, entries: &[Entry]) {
    let mut out = Vec::new();
    for e in entries {
        let mut h = [0u8; 512];
        h[..e.name.len()].copy_from_slice(e.name.as_bytes());
        octal(&mut h[100..108], e.mode.into());
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], e.data.len() as u64);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = e.kind;
        h[157..157 + e.link.len()].copy_from_slice(e.link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], e.dev.0.into());
        octal(&mut h[337..345], e.dev.1.into());
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    fs::write(path, out).unwrap();
}

/// A directory on the host that the archives aim at.
struct Victim {
    dir: PathBuf,
}

impl Victim {
    fn new() -> Victim {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("victim-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("file.txt"), "original").unwrap();
        Victim { dir }
    }

    fn assert_untouched(&self, case: &str) {
        let names: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["file.txt"],
            "{case}: something was written into the victim directory"
        );
        assert_eq!(
            fs::read_to_string(self.dir.join("file.txt")).unwrap(),
            "original",
            "{case}: victim file changed"
        );
    }
}

fn corpus(victim: &Path) -> Vec<(&'static str, Vec<Entry>)> {
    let v = victim.to_str().unwrap().to_string();
    let rel_climb = format!("{}{}", "../".repeat(30), v.trim_start_matches('/'));
    vec![
        ("dot-dot file", vec![file("../escape.txt", "x")]),
        (
            "nested dot-dot",
            vec![dir("a/"), file("a/../../escape.txt", "x")],
        ),
        ("absolute path", vec![file(&format!("{v}/abs.txt"), "x")]),
        (
            "absolute symlink then file through it",
            vec![symlink("link", &v), file("link/through.txt", "x")],
        ),
        (
            "climbing relative symlink",
            vec![
                symlink("up", &"../".repeat(30)),
                file(&format!("up/{}/climb.txt", v.trim_start_matches('/')), "x"),
            ],
        ),
        (
            "symlink to a file then a file of that name",
            vec![
                symlink("s", &format!("{v}/file.txt")),
                file("s", "overwritten"),
            ],
        ),
        (
            "symlink then write through its name",
            vec![
                symlink("t", &format!("{v}/file.txt")),
                hardlink("t2", "t"),
                file("t2", "overwritten"),
            ],
        ),
        (
            "hard link to an absolute host file",
            vec![hardlink("hl", &format!("{v}/file.txt"))],
        ),
        (
            "hard link climbing out",
            vec![hardlink("hl", &format!("{rel_climb}/file.txt"))],
        ),
        (
            "symlink chain",
            vec![
                symlink("a", "b"),
                symlink("b", &v),
                file("a/chain.txt", "x"),
            ],
        ),
        (
            "directory entry over an escaping symlink",
            vec![symlink("d", &v), dir("d/"), file("d/in-dir.txt", "x")],
        ),
        ("character device", vec![device("dev/mem", b'3', 1, 1)]),
        ("block device", vec![device("dev/sda", b'4', 8, 0)]),
        (
            "pax path with dot-dot",
            vec![
                pax(&[("path", "../pax-escape.txt")]),
                file("innocent.txt", "x"),
            ],
        ),
        (
            "gnu long name with dot-dot",
            vec![
                gnu_longname(&format!("{}{}", "../".repeat(40), "long-escape.txt")),
                file("placeholder", "x"),
            ],
        ),
        (
            "pax linkpath escaping",
            vec![
                pax(&[("linkpath", &format!("{v}/file.txt"))]),
                hardlink("pl", "innocent"),
            ],
        ),
        (
            "overlay xattr smuggled in pax",
            vec![
                pax(&[("SCHILY.xattr.trusted.overlay.opaque", "y")]),
                dir("opaque/"),
            ],
        ),
    ]
}

fn parent_entries(base: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn unpacker_keeps_every_archive_inside_its_root() {
    require_root();
    let victim = Victim::new();
    for (case, entries) in corpus(&victim.dir) {
        let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let tar = base.path().join("evil.tar");
        write_tar(&tar, &entries);
        let root_dir = base.path().join("root");
        fs::create_dir(&root_dir).unwrap();
        let root = kiln::layer::confined::Root::open(&root_dir).unwrap();
        let result = kiln::layer::unpack::unpack(
            fs::File::open(&tar).unwrap(),
            &root,
            &[],
            kiln::layer::unpack::Flavor::Overlay,
        );
        victim.assert_untouched(case);
        assert_eq!(
            parent_entries(base.path()),
            ["evil.tar", "root"],
            "{case}: wrote next to the root"
        );
        for e in walkdir::WalkDir::new(&root_dir) {
            let e = e.unwrap();
            use std::os::unix::fs::FileTypeExt;
            let ft = e.file_type();
            assert!(!ft.is_block_device(), "{case}: block device created");
            if ft.is_char_device() {
                use std::os::unix::fs::MetadataExt;
                assert_eq!(
                    e.metadata().unwrap().rdev(),
                    0,
                    "{case}: device node created"
                );
            }
            assert!(
                xattr::get(e.path(), "trusted.overlay.opaque")
                    .unwrap()
                    .is_none(),
                "{case}: overlay xattr accepted"
            );
        }
        if case.contains("dot-dot") || case.contains("climbing out") {
            assert!(result.is_err(), "{case}: `..` must be refused");
        }
    }
}

#[test]
fn import_and_add_keep_every_archive_inside() {
    let store = TestStore::with_debian();
    let victim = Victim::new();
    for (i, (case, entries)) in corpus(&victim.dir).into_iter().enumerate() {
        let ctx = context(&[("Dockerfile", "FROM debian:bookworm\nADD evil.tar /dest/\n")]);
        write_tar(&ctx.path().join("evil.tar"), &entries);
        let before = store.snapshot();
        let import = store.kiln(&[
            "import",
            ctx.path().join("evil.tar").to_str().unwrap(),
            &format!("evil:{i}"),
        ]);
        victim.assert_untouched(case);
        if !import.status.success() {
            assert_eq!(
                store.snapshot(),
                before,
                "{case}: a refused import changed the store"
            );
        }
        let add = store.kiln(&[
            "build",
            "-t",
            &format!("added:{i}"),
            ctx.path().to_str().unwrap(),
        ]);
        victim.assert_untouched(case);
        if add.status.success() {
            let listing = store.run_sh(
                &format!("added:{i}"),
                "find /dest -type b -o -type c | wc -l",
            );
            assert_eq!(listing.trim(), "0", "{case}: ADD created device nodes");
        }
    }
}
