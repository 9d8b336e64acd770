//! The python family of stacks/python, built for bookworm × 3.11.2 with
//! optimize off, checked from the inside and with independent tools.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A copy of stacks/python, so that the artifacts' `out/` lands outside
/// the source tree.
fn stack() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dest = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("python-stack-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dest);
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/python");
        let status = Command::new("cp")
            .arg("-r")
            .arg(&src)
            .arg(&dest)
            .status()
            .unwrap();
        assert!(status.success());
        let _ = fs::remove_dir_all(dest.join("out"));
        dest
    })
    .clone()
}

fn family(store: &TestStore, args: &[&str]) -> std::process::Output {
    let mut cmd = store.cmd();
    cmd.arg(args[0])
        .arg("-C")
        .arg(stack())
        .args(&args[1..])
        .args(["--set", "optimize=false"]);
    cmd.output().unwrap()
}

/// Entry names of every layer of an image.
fn layer_entries(store: &TestStore, image: &str) -> Vec<String> {
    let inspect: serde_json::Value =
        serde_json::from_slice(&store.kiln(&["inspect", image]).stdout).unwrap();
    let mut names = Vec::new();
    for layer in inspect["layers"].as_array().unwrap() {
        let digest = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let blob = fs::File::open(store.path().join("blobs/sha256").join(digest)).unwrap();
        let mut tar = tar::Archive::new(kiln::layer::unpack::decompress(blob).unwrap());
        for e in tar.entries().unwrap() {
            names.push(String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned());
        }
    }
    names
}

#[test]
fn python_family_builds_runs_and_rebuilds_only_what_pkgrel_touches() {
    let store = TestStore::new();
    let out = family(&store, &["build", "--progress", "plain"]);
    assert_success(&out);

    // The runtime image: a complete stdlib, pip in the venv, no toolchain.
    let image = "python:3.11.2-bookworm";
    let seen = store.run_sh(
        image,
        "python -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, readline, uuid, decimal, hashlib, venv; print(\"stdlib ok\")' \
         && /venv/bin/pip --version | cut -d' ' -f1 && command -v python \
         && dpkg-query -W -f='${Status}\\n' kiln-python3.11 \
         && for t in gcc cc make; do command -v $t && echo \"HAS $t\"; done; ls -d /usr/include/python* 2>/dev/null; true",
    );
    assert_eq!(
        seen,
        "stdlib ok\npip\n/venv/bin/python\ninstall ok installed\n"
    );

    // The .deb: name, version with pkgrel and release, computed Depends.
    let debs: Vec<PathBuf> = fs::read_dir(stack().join("out/python-deb/bookworm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let field = |f: &str| {
        let o = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&debs[0])
            .arg(f)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(field("Package"), "kiln-python3.11");
    assert_eq!(field("Version"), "3.11.2-1~bookworm");
    let depends = field("Depends");
    for lib in [
        "libc6",
        "libssl3",
        "libsqlite3-0",
        "libffi8",
        "libbz2-1.0",
        "liblzma5",
        "zlib1g",
    ] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&debs[0])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("./opt/python/3.11/lib/libpython3.11.so"),
        "shared libpython"
    );
    assert!(
        !listing.contains("/test/") && !listing.contains(".pyc") && !listing.contains(".a\n"),
        "tests, bytecode or static lib packaged"
    );

    // The example app installed its wheels offline from the wheelhouse
    // (built by pip over HTTPS in wheelbuild, through the host's CA).
    assert!(
        store
            .run_sh("app-example:3.11.2-bookworm", "python /app/app.py")
            .starts_with("app-example 1.16.0 &lt;ok&gt;")
    );
    assert!(
        fs::read_dir(stack().join("out/wheelhouse/3.11.2-bookworm"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("six-1.16.0"))
    );

    // Build-only files are in no layer.
    for img in [image, "app-example:3.11.2-bookworm"] {
        for entry in layer_entries(&store, img) {
            // CPython's own ensurepip wheels are stdlib, not build input.
            let stdlib_wheel = entry.contains("/ensurepip/_bundled/");
            assert!(
                !entry.ends_with(".deb") && (stdlib_wheel || !entry.ends_with(".whl")),
                "{img} carries {entry}"
            );
            assert!(!entry.contains("run/kiln"), "{img} carries {entry}");
        }
    }
    let host_bundle = fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap();
    assert_eq!(
        store.blobs_containing(&host_bundle),
        Vec::<String>::new(),
        "the host CA bundle is in a blob"
    );

    // A rebuild of the whole family runs nothing.
    let again = family(&store, &["build", "--progress", "plain"]);
    assert_success(&again);
    assert!(!stderr(&again).contains(" DONE "), "{}", stderr(&again));

    // A new pkgrel rebuilds the .deb and what depends on it, nothing else.
    let bumped = family(
        &store,
        &["build", "--progress", "plain", "--set", "pkgrel=2"],
    );
    assert_success(&bumped);
    let log = stderr(&bumped);
    let ran: Vec<&str> = log.lines().filter(|l| l.contains(" DONE ")).collect();
    for l in &ran {
        assert!(
            !l.starts_with("[debbase]") && !l.starts_with("[pybuild]"),
            "{l}"
        );
    }
    assert!(ran.iter().any(|l| l.starts_with("[python-deb]")), "{log}");
    assert!(ran.iter().any(|l| l.starts_with("[python]")), "{log}");
    let field2 = {
        let deb = fs::read_dir(stack().join("out/python-deb/bookworm"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let o = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg("Version")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(field2, "3.11.2-2~bookworm");

    // An independent runtime runs the exported image.
    let tar =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("python-{}.tar", std::process::id()));
    assert_success(&store.kiln(&[
        "export",
        image,
        "--format",
        "docker-archive",
        "-o",
        tar.to_str().unwrap(),
    ]));
    if docker_answers() {
        assert_success(
            &Command::new("docker")
                .args(["load", "-i"])
                .arg(&tar)
                .output()
                .unwrap(),
        );
        let run = Command::new("docker")
            .args([
                "run",
                "--rm",
                image,
                "python",
                "-c",
                "import sqlite3; print(sqlite3.sqlite_version)",
            ])
            .output()
            .unwrap();
        assert_success(&run);
        assert!(String::from_utf8_lossy(&run.stdout).starts_with("3."));
        let _ = Command::new("docker").args(["rmi", image]).output();
    } else {
        eprintln!("!!! no Docker engine answers: checking with skopeo only");
        let sk = Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", tar.display()))
            .output()
            .unwrap();
        assert_success(&sk);
    }
    let _ = fs::remove_file(&tar);
}
