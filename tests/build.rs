//! End-to-end builds as root over a real Debian root, checked with
//! independent OCI readers.

mod common;

use std::fs;
use std::process::Command;

use common::*;

const SECRET: &str = "kiln-test-secret-7f3a9c";
const BIND_ONLY: &str = "kiln-bind-only-bytes-51e2";

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=debian:bookworm
FROM ${BASE} AS builder
RUN mkdir -p /out && echo built-in-builder > /out/artifact
FROM ${BASE} AS unused
RUN exit 3
FROM ${BASE}
ARG GREETING=hello
ENV APP_HOME=/app PATH=/app/bin:$PATH
WORKDIR $APP_HOME
COPY greeting.txt ./
COPY src/ ./src/
COPY --from=builder /out/artifact /opt/artifact
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /app/secret-length
RUN --mount=type=bind,source=bindonly,target=/mnt/bindonly cat /mnt/bindonly/data | wc -c > /app/bind-length
RUN --mount=type=cache,target=/var/cache/kiln-test echo "$GREETING" >> /var/cache/kiln-test/log && wc -l < /var/cache/kiln-test/log > /app/cache-lines
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /app/tmpfs-ls
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends hello >/dev/null && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1234 app
USER app
RUN id -u > /tmp/uid && echo "$GREETING from $(pwd)" > /tmp/greeting
EXPOSE 8080
CMD ["cat", "/app/greeting.txt"]
"#;

fn project() -> tempfile::TempDir {
    let ctx = context(&[
        ("Dockerfile", DOCKERFILE),
        ("greeting.txt", "hi there\n"),
        ("src/app.py", "print('app')\n"),
        ("src/lib/util.py", "X = 1\n"),
        ("bindonly/data", BIND_ONLY),
        ("ignored.log", "should not be copied"),
        (".dockerignore", "*.log\n"),
    ]);
    fs::write(ctx.path().join("tok"), SECRET).unwrap();
    ctx
}

fn build(store: &TestStore, ctx: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let tok = format!("id=tok,src={}", ctx.join("tok").display());
    let mut args = vec![
        "build",
        "-t",
        "app:1",
        "--secret",
        &tok,
        "--progress",
        "plain",
    ];
    args.extend_from_slice(extra);
    let ctx_s = ctx.to_str().unwrap();
    args.push(ctx_s);
    store.kiln(&args)
}

#[test]
fn full_dockerfile_builds_runs_caches_and_leaks_nothing() {
    let store = TestStore::with_debian();
    let ctx = project();
    let out = build(&store, ctx.path(), &[]);
    assert_success(&out);
    let log = stderr(&out);
    assert!(
        !log.contains("exit 3"),
        "the unused stage must not run:\n{log}"
    );

    // What the steps did, seen from inside the image.
    let seen = store.run_sh(
        "app:1",
        "cat /app/greeting.txt /app/secret-length /app/bind-length /app/cache-lines /app/tmpfs-ls /opt/artifact /tmp/uid /tmp/greeting; ls /app/src; ls /app/src/lib; command -v hello; test -e /app/ignored.log && echo IGNORED-COPIED; test -e /run/secrets && echo SECRET-DIR; test -e /mnt/bindonly && echo BIND-DIR; test -e /scratch && echo TMPFS-DIR; true",
    );
    let expect = format!(
        "hi there\n{}\n{}\n1\nx\nbuilt-in-builder\n1234\nhello from /app\napp.py\nlib\nutil.py\n/usr/bin/hello\n",
        SECRET.len(),
        BIND_ONLY.len()
    );
    assert_eq!(seen, expect);

    // The image config.
    let inspect = store.kiln(&["inspect", "app:1"]);
    assert_success(&inspect);
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let config = &json["config"]["config"];
    assert_eq!(config["User"], "app");
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["cat", "/app/greeting.txt"])
    );
    assert!(config["ExposedPorts"]["8080/tcp"].is_object());
    assert!(config["Env"].as_array().unwrap().iter().any(|e| {
        e.as_str()
            .unwrap()
            .starts_with("PATH=/app/bin:/usr/local/sbin")
    }));
    let layers = json["layers"].as_array().unwrap();
    assert!(layers.iter().any(|l| {
        l["created_by"]
            .as_str()
            .unwrap()
            .starts_with("RUN apt-get update")
    }));

    // Build-only bytes are in no blob, config or history.
    assert_eq!(
        store.blobs_containing(SECRET.as_bytes()),
        Vec::<String>::new()
    );
    assert_eq!(
        store.blobs_containing(BIND_ONLY.as_bytes()),
        Vec::<String>::new()
    );

    // A second build runs nothing and yields the same image.
    let first_digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let again = build(&store, ctx.path(), &[]);
    assert_success(&again);
    let log = stderr(&again);
    assert!(log.contains("(0 steps run, 11 cached)"), "{log}");
    assert!(!log.contains("DONE"), "{log}");
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), first_digest);

    // A changed COPY input re-runs that COPY and what follows, nothing before.
    fs::write(ctx.path().join("src/app.py"), "print('changed')\n").unwrap();
    let changed = build(&store, ctx.path(), &[]);
    assert_success(&changed);
    let log = stderr(&changed);
    let status = |needle: &str| {
        let line = log
            .lines()
            .rfind(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line for {needle}:\n{log}"));
        if line.contains("CACHED") {
            "cached"
        } else if line.contains("DONE") {
            "ran"
        } else {
            "other"
        }
    };
    assert_eq!(status("COPY greeting.txt"), "cached");
    assert_eq!(status("COPY src/"), "ran");
    assert_eq!(status("COPY --from=builder"), "ran");
    assert_eq!(status("RUN useradd"), "ran");
    assert!(
        store
            .run_sh("app:1", "cat /app/src/app.py")
            .contains("changed")
    );

    // Independent readers accept the store as an OCI layout.
    require_tool("skopeo");
    let sk = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:app:1", store.path().display()))
        .output()
        .unwrap();
    assert_success(&sk);
    let sk: serde_json::Value = serde_json::from_slice(&sk.stdout).unwrap();
    assert_eq!(sk["Layers"].as_array().unwrap().len(), layers.len());

    require_tool("umoci");
    let bundle = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let um = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:app:1", store.path().display()))
        .arg(bundle.path().join("b"))
        .output()
        .unwrap();
    assert_success(&um);
    let rootfs = bundle.path().join("b/rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("app/greeting.txt")).unwrap(),
        "hi there\n"
    );
    assert!(rootfs.join("usr/bin/hello").exists());
    assert!(!rootfs.join("run/secrets").exists());
    assert!(!rootfs.join("mnt/bindonly").exists());

    // A clean store after all this.
    let fsck = store.kiln(&["fsck"]);
    assert_success(&fsck);
}

#[test]
fn buildah_and_docker_run_what_kiln_exports() {
    let store = TestStore::with_debian();
    let ctx = context(&[(
        "Dockerfile",
        "FROM debian:bookworm\nRUN echo made-by-kiln > /made\nCMD [\"cat\", \"/made\"]\n",
    )]);
    assert_success(&store.kiln(&[
        "build",
        "-t",
        "kiln-export-test:1",
        ctx.path().to_str().unwrap(),
    ]));
    let out = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();

    require_tool("buildah");
    // buildah names the image after the layout path, which must be lowercase.
    let layout = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("layout-{}", std::process::id()));
    let _ = fs::remove_dir_all(&layout);
    assert_success(&store.kiln(&[
        "export",
        "kiln-export-test:1",
        "--format",
        "oci",
        "-o",
        layout.to_str().unwrap(),
    ]));
    let name = format!("kiln-test-{}", std::process::id());
    let from = Command::new("buildah")
        .args(["from", "--pull-never", "--name", &name])
        .arg(format!("oci:{}:kiln-export-test:1", layout.display()))
        .output()
        .unwrap();
    assert_success(&from);
    let container = String::from_utf8_lossy(&from.stdout).trim().to_string();
    let run = Command::new("buildah")
        .args(["run", "--isolation", "chroot", &container, "cat", "/made"])
        .output()
        .unwrap();
    let _ = Command::new("buildah").args(["rm", &container]).output();
    let _ = fs::remove_dir_all(&layout);
    assert_success(&run);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "made-by-kiln\n");

    let archive = out.path().join("oci.tar");
    assert_success(&store.kiln(&[
        "export",
        "kiln-export-test:1",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
    ]));
    let sk = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert_success(&sk);

    let docker_tar = out.path().join("docker.tar");
    assert_success(&store.kiln(&[
        "export",
        "kiln-export-test:1",
        "--format",
        "docker-archive",
        "-o",
        docker_tar.to_str().unwrap(),
    ]));
    let sk = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", docker_tar.display()))
        .output()
        .unwrap();
    assert_success(&sk);
    if docker_answers() {
        assert_success(
            &Command::new("docker")
                .args(["load", "-i"])
                .arg(&docker_tar)
                .output()
                .unwrap(),
        );
        let run = Command::new("docker")
            .args(["run", "--rm", "kiln-export-test:1"])
            .output()
            .unwrap();
        assert_success(&run);
        assert_eq!(String::from_utf8_lossy(&run.stdout), "made-by-kiln\n");
        let _ = Command::new("docker")
            .args(["rmi", "kiln-export-test:1"])
            .output();
    } else {
        eprintln!(
            "!!! no Docker engine answers `docker info`: the docker load/run check did not run (buildah did)"
        );
    }
}

#[test]
fn failing_step_names_its_line_and_commits_nothing() {
    let store = TestStore::with_debian();
    let ctx = context(&[(
        "Dockerfile",
        "FROM debian:bookworm\nRUN echo first-line && echo last-words-before-failure && exit 7\nRUN echo never\n",
    )]);
    let before = store.snapshot();
    let out = store.kiln(&["build", "-t", "broken", ctx.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("Dockerfile:2:1"), "{err}");
    assert!(err.contains("exit code 7"), "{err}");
    assert!(err.contains("last-words-before-failure"), "{err}");
    assert!(!err.contains("never"), "{err}");
    assert_eq!(
        store.snapshot(),
        before,
        "a failed step must leave the store as it was"
    );
    assert_success(&store.kiln(&["fsck"]));
}

#[test]
fn target_local_output_and_heredocs() {
    let store = TestStore::with_debian();
    let df = "FROM debian:bookworm AS base\nARG NAME=world\nRUN <<EOT\nset -e\necho \"hello $NAME\" > /hello\nEOT\nCOPY <<EOF /etc/kiln-note\nnote for ${NAME}\nEOF\nFROM base AS final\nRUN exit 9\n";
    let ctx = context(&[("Dockerfile", df)]);
    let dest = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out_arg = format!("type=local,dest={}", dest.path().join("out").display());
    let out = store.kiln(&[
        "build",
        "--target",
        "base",
        "--build-arg",
        "NAME=kiln",
        "--output",
        &out_arg,
        ctx.path().to_str().unwrap(),
    ]);
    assert_success(&out);
    let root = dest.path().join("out");
    assert_eq!(
        fs::read_to_string(root.join("hello")).unwrap(),
        "hello kiln\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/kiln-note")).unwrap(),
        "note for kiln\n"
    );
    assert!(root.join("usr/bin/dpkg").exists());
}

#[test]
fn concurrent_builds_share_one_store_safely() {
    let store = TestStore::with_debian();
    let ctx = context(&[(
        "Dockerfile",
        "FROM debian:bookworm\nARG N\nRUN echo $N > /n && sleep 1\nCOPY Dockerfile /\n",
    )]);
    let children: Vec<_> = (0..4)
        .map(|i| {
            store
                .cmd()
                .args([
                    "build",
                    "-t",
                    &format!("par:{}", i % 2),
                    "--build-arg",
                    &format!("N={}", i % 2),
                    ctx.path().to_str().unwrap(),
                ])
                .output()
        })
        .collect();
    for c in children {
        assert_success(&c.unwrap());
    }
    assert_eq!(store.run_sh("par:1", "cat /n"), "1\n");
    assert_success(&store.kiln(&["fsck"]));
    let images = store.kiln(&["images"]);
    assert!(String::from_utf8_lossy(&images.stdout).contains("par:0"));
}

#[test]
fn add_extracts_local_archives_and_checks_url_checksums() {
    let store = TestStore::with_debian();
    let ctx = context(&[
        ("payload/inner/file.txt", "from the archive\n"),
        ("served.txt", "served over http\n"),
    ]);
    let status = Command::new("tar")
        .arg("-czf")
        .arg(ctx.path().join("payload.tgz"))
        .arg("-C")
        .arg(ctx.path().join("payload"))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    // A server on loopback for ADD URL.
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(ctx.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let good = kiln::digest::sha256_of(b"served over http\n");
    let df = format!(
        "FROM debian:bookworm\nADD payload.tgz /opt/payload/\nADD --checksum={good} http://127.0.0.1:{port}/served.txt /opt/served.txt\n"
    );
    fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    let out = store.kiln(&["build", "-t", "added", ctx.path().to_str().unwrap()]);
    let bad_df = format!(
        "FROM debian:bookworm\nADD --checksum=sha256:{} http://127.0.0.1:{port}/served.txt /x\n",
        "0".repeat(64)
    );
    fs::write(ctx.path().join("Dockerfile.bad"), bad_df).unwrap();
    let before = store.snapshot();
    let bad = store.kiln(&[
        "build",
        "-f",
        ctx.path().join("Dockerfile.bad").to_str().unwrap(),
        ctx.path().to_str().unwrap(),
    ]);
    let after = store.snapshot();
    let _ = server.kill();
    let _ = server.wait();
    assert_success(&out);
    assert_eq!(
        store.run_sh("added", "cat /opt/payload/inner/file.txt /opt/served.txt"),
        "from the archive\nserved over http\n"
    );
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        stderr(&bad).contains("checksum mismatch"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(
        before, after,
        "a failed download leaves the store as it was"
    );
}

#[test]
fn bootstrap_debian_makes_a_runnable_base() {
    let store = TestStore::new();
    let out = store.kiln(&["bootstrap", "debian", "bookworm", "deb:boot"]);
    assert_success(&out);
    assert!(
        store
            .run_sh("deb:boot", "cat /etc/debian_version")
            .starts_with("12.")
    );
}
