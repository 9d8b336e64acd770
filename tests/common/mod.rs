//! Shared pieces of the integration tests: a kiln command against a fresh
//! store, a cached Debian rootfs made by mmdebstrap, and store inspection.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// These tests build in namespaces over overlayfs: they need root. CI runs
/// as root; anywhere else this fails loudly rather than skipping.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (namespaces, overlayfs, mmdebstrap); run `cargo test` as root"
    );
}

pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .unwrap()
        .status
        .success();
    assert!(
        found,
        "this test needs `{tool}`; install it with scripts/setup"
    );
}

pub struct TestStore {
    pub dir: tempfile::TempDir,
}

impl TestStore {
    pub fn new() -> TestStore {
        require_root();
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(base).unwrap();
        TestStore {
            dir: tempfile::Builder::new()
                .prefix("store-")
                .tempdir_in(base)
                .unwrap(),
        }
    }

    /// A store holding `debian:bookworm` (imported from the cached rootfs).
    pub fn with_debian() -> TestStore {
        let store = TestStore::new();
        let out = store.kiln(&[
            "import",
            debian_rootfs().to_str().unwrap(),
            "debian:bookworm",
        ]);
        assert_success(&out);
        store
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.arg("--store").arg(self.path()).env("NO_COLOR", "1");
        c
    }

    pub fn kiln(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Every file of the store with its size, except scratch and locks.
    pub fn snapshot(&self) -> BTreeSet<(String, u64)> {
        walkdir::WalkDir::new(self.path())
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                (
                    e.path()
                        .strip_prefix(self.path())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .filter(|(p, _)| !p.starts_with("kiln-v1/tmp/") && !p.ends_with(".lock"))
            .collect()
    }

    /// Blobs whose (decompressed) bytes contain `needle`.
    pub fn blobs_containing(&self, needle: &[u8]) -> Vec<String> {
        let mut hits = Vec::new();
        for e in fs::read_dir(self.path().join("blobs/sha256")).unwrap() {
            let path = e.unwrap().path();
            let mut bytes = Vec::new();
            let file = fs::File::open(&path).unwrap();
            kiln::layer::unpack::decompress(file)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
        hits
    }

    /// Runs `kiln run NAME -- sh -c SCRIPT` and returns stdout.
    pub fn run_sh(&self, image: &str, script: &str) -> String {
        let out = self.kiln(&["run", image, "--", "sh", "-c", script]);
        assert_success(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "kiln failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A Debian bookworm minbase rootfs tar, made once with mmdebstrap from the
/// host's apt mirror and kept under the target directory.
pub fn debian_rootfs() -> PathBuf {
    require_root();
    require_tool("mmdebstrap");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    fs::create_dir_all(&dir).unwrap();
    let tar = dir.join("bookworm-minbase.tar");
    let lock = fs::File::create(dir.join("bookworm.lock")).unwrap();
    lock.lock().unwrap();
    if !tar.exists() {
        let mirror = kiln::bases::apt_sources::host_mirror().unwrap();
        let partial = dir.join("bookworm-minbase.tar.partial");
        let status = Command::new("mmdebstrap")
            .args([
                "--mode=root",
                "--variant=minbase",
                "--format=tar",
                "--quiet",
                "bookworm",
            ])
            .arg(&partial)
            .arg(&mirror)
            .status()
            .unwrap();
        assert!(status.success(), "mmdebstrap failed");
        fs::rename(&partial, &tar).unwrap();
    }
    tar
}

/// A build context in a temporary directory, from (path, contents) pairs.
pub fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ctx-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    for (path, contents) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, contents).unwrap();
    }
    dir
}

/// Whether a Docker engine answers here.
pub fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}
