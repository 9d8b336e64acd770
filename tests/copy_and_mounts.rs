//! COPY's rules and flags, and every way a RUN step can see build-only
//! files.

mod common;

use std::fs;

use common::*;

const DOCKERFILE: &str = r#"FROM debian:bookworm AS tools
RUN mkdir -p /opt/tools && echo tool-one > /opt/tools/t1 && echo tool-two > /opt/tools/t2
FROM debian:bookworm
RUN useradd -u 2000 builder
COPY --chown=builder:builder --chmod=0640 conf/app.conf /etc/app/
COPY *.py /srv/
COPY conf/app.conf /usr/local/bin
COPY --from=tools /opt/tools/ /opt/copied/
COPY --from=debian:bookworm /etc/debian_version /etc/from-image-version
RUN --mount=type=bind,from=tools,source=/opt/tools,target=/mnt/tools cat /mnt/tools/t1 > /from-stage-mount
RUN --mount=type=bind,from=debian:bookworm,target=/mnt/base cat /mnt/base/etc/debian_version > /from-image-mount
RUN --mount=type=bind,source=conf,target=/mnt/conf,rw echo scribble > /mnt/conf/new && ls /mnt/conf > /rw-listing
RUN --network=none ls /sys/class/net > /netifs
ONBUILD RUN echo later
"#;

#[test]
fn copy_flags_sources_and_mount_kinds() {
    let store = TestStore::with_debian();
    let ctx = context(&[
        ("Dockerfile", DOCKERFILE),
        ("conf/app.conf", "key=value\n"),
        ("a.py", "a"),
        ("b.py", "b"),
        ("c.txt", "c"),
    ]);
    let out = store.kiln(&["build", "-t", "copies", ctx.path().to_str().unwrap()]);
    assert_success(&out);
    let seen = store.run_sh(
        "copies",
        "stat -c '%u:%g %a' /etc/app/app.conf; ls /srv; cat /usr/local/bin/app.conf /opt/copied/t1 /opt/copied/t2 /from-stage-mount; \
         cmp /etc/from-image-version /etc/debian_version && echo same-version; cmp /from-image-mount /etc/debian_version && echo same-mount; \
         cat /rw-listing /netifs",
    );
    assert_eq!(
        seen,
        "2000:2000 640\na.py\nb.py\nkey=value\ntool-one\ntool-two\ntool-one\nsame-version\nsame-mount\napp.conf\nnew\nlo\n"
    );
    assert!(
        !ctx.path().join("conf/new").exists(),
        "writes to an rw bind mount must not reach the context"
    );
    let inspect = store.kiln(&["inspect", "copies"]);
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        json["config"]["config"]["OnBuild"],
        serde_json::json!(["RUN echo later"])
    );
}

#[test]
fn several_sources_need_a_directory_destination() {
    let store = TestStore::with_debian();
    let ctx = context(&[
        ("Dockerfile", "FROM debian:bookworm\nCOPY *.py /app.py\n"),
        ("a.py", "a"),
        ("b.py", "b"),
    ]);
    let before = store.snapshot();
    let out = store.kiln(&["build", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("must be a directory"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("Dockerfile:2:1"), "{}", stderr(&out));
    assert_eq!(store.snapshot(), before);
}

#[test]
fn store_commands_list_remove_prune_and_check() {
    let store = TestStore::with_debian();
    let ctx = context(&[("Dockerfile", "FROM debian:bookworm\nRUN echo one > /one\n")]);
    assert_success(&store.kiln(&[
        "build",
        "-t",
        "keep:1",
        "-t",
        "drop:1",
        ctx.path().to_str().unwrap(),
    ]));
    let images = String::from_utf8_lossy(&store.kiln(&["images"]).stdout).into_owned();
    assert!(
        images.contains("keep:1")
            && images.contains("drop:1")
            && images.contains("debian:bookworm"),
        "{images}"
    );

    // --no-cache runs the step again.
    let again = store.kiln(&[
        "build",
        "--no-cache",
        "-t",
        "keep:1",
        ctx.path().to_str().unwrap(),
    ]);
    assert_success(&again);
    assert!(
        stderr(&again).contains("(1 steps run, 0 cached)"),
        "{}",
        stderr(&again)
    );

    assert_success(&store.kiln(&["rm", "drop:1"]));
    let out = store.kiln(&["rm", "drop:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_success(&store.kiln(&["rm", "keep:1"]));
    let blobs_before = fs::read_dir(store.path().join("blobs/sha256"))
        .unwrap()
        .count();
    let prune = store.kiln(&["prune", "--all"]);
    assert_success(&prune);
    let blobs_after = fs::read_dir(store.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert!(
        blobs_after < blobs_before,
        "prune removed nothing ({blobs_before} → {blobs_after})"
    );
    assert!(
        store
            .run_sh("debian:bookworm", "echo alive")
            .contains("alive"),
        "the base survives prune"
    );
    assert_success(&store.kiln(&["fsck"]));

    // Corrupt one blob: fsck must notice.
    let victim = fs::read_dir(store.path().join("blobs/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&victim).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&victim, bytes).unwrap();
    let fsck = store.kiln(&["fsck"]);
    assert!(!fsck.status.success());
    assert!(
        String::from_utf8_lossy(&fsck.stdout).contains("has content digest"),
        "{}\n{}",
        String::from_utf8_lossy(&fsck.stdout),
        stderr(&fsck)
    );
}
