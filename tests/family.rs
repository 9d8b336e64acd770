//! Image families from kiln.toml: params, templates, references between
//! targets, caching across runs, `plan --explain`, and `render` built by
//! buildah.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn write_project(dir: &Path, rootfs: &Path) {
    let note = "a note from a source\n";
    let sha = kiln::digest::sha256_of(note.as_bytes());
    let files: &[(&str, String)] = &[
        (
            "kiln.toml",
            format!(
                r#"
[params]
greeting = "hello"
flavour = "plain"

[base.debian]
rootfs = "{rootfs}"

[source.note]
path = "note.txt"
sha256 = "{sha}"

[image.debbase]
dockerfile = "debbase.Dockerfile"
tags = ["debbase:{{{{ flavour }}}}"]

[artifact.tool]
dockerfile = "tool.Dockerfile"
output = "out/tool-{{{{ flavour }}}}"

[image.app]
dockerfile = "app.Dockerfile"
tags = ["app:{{{{ flavour }}}}"]
labels = {{ "org.example.flavour" = "{{{{ flavour }}}}" }}
"#,
                rootfs = rootfs.display(),
                sha = sha.trim_start_matches("sha256:")
            ),
        ),
        ("note.txt", note.to_string()),
        ("fragments/stamp.Dockerfile", "RUN echo stamped > /stamp\n".to_string()),
        ("debbase.Dockerfile", "FROM debian\nRUN echo {{ greeting }} > /greeting\n".to_string()),
        (
            "tool.Dockerfile",
            "FROM debbase AS build\nRUN mkdir /out && echo \"tool {{ flavour }}\" > /out/tool.txt\nFROM scratch\nCOPY --from=build /out/ /\n".to_string(),
        ),
        (
            "app.Dockerfile",
            "FROM debbase\n{% include \"fragments/stamp.Dockerfile\" %}RUN --mount=type=bind,from=tool,target=/mnt/tool --mount=type=bind,from=note,target=/mnt/note cat /mnt/tool/tool.txt /mnt/note/note.txt > /app-saw\nCMD [\"cat\", \"/app-saw\"]\n".to_string(),
        ),
    ];
    for (name, text) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

fn family(store: &TestStore, dir: &Path, args: &[&str]) -> std::process::Output {
    // -C is a subcommand flag: it goes after the subcommand.
    let mut full = store.cmd();
    full.arg(args[0]).arg("-C").arg(dir).args(&args[1..]);
    full.output().unwrap()
}

#[test]
fn three_targets_build_cache_and_rebuild_only_what_a_param_touches() {
    let store = TestStore::new();
    let project = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    write_project(project.path(), &debian_rootfs());

    let first = family(&store, project.path(), &["build", "--progress", "plain"]);
    assert_success(&first);
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(
        summary.contains("app:plain") && summary.contains("debbase:plain"),
        "{summary}"
    );
    assert_eq!(
        store.run_sh("app:plain", "cat /app-saw /greeting /stamp"),
        "tool plain\na note from a source\nhello\nstamped\n"
    );
    assert_eq!(
        fs::read_to_string(project.path().join("out/tool-plain/tool.txt")).unwrap(),
        "tool plain\n"
    );
    let inspect: serde_json::Value =
        serde_json::from_slice(&store.kiln(&["inspect", "app:plain"]).stdout).unwrap();
    assert_eq!(
        inspect["config"]["config"]["Labels"]["org.example.flavour"],
        "plain"
    );

    // Everything cached the second time.
    let second = family(&store, project.path(), &["build", "--progress", "plain"]);
    assert_success(&second);
    let log = stderr(&second);
    assert!(!log.contains(" DONE "), "nothing may run:\n{log}");
    assert!(log.contains("CACHED"), "{log}");

    // plan --explain names the param before anything is rebuilt.
    let plan = family(
        &store,
        project.path(),
        &["plan", "--explain", "--set", "flavour=fancy"],
    );
    assert_success(&plan);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("params changed since the last build: flavour plain → fancy"),
        "{text}"
    );
    let section = |header: &str| -> String {
        text.lines()
            .skip_while(|l| !l.starts_with(header))
            .skip(1)
            .take_while(|l| l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let debbase_section = section("image debbase");
    assert!(
        debbase_section.contains("CACHED") && !debbase_section.contains("WILL RUN"),
        "debbase must stay cached:\n{text}"
    );
    let tool_section = section("artifact tool");
    assert!(tool_section.contains("WILL RUN  RUN mkdir /out"), "{text}");
    assert!(
        tool_section.contains("because instruction changed: `…")
            && tool_section.contains("tool plain")
            && tool_section.contains("tool fancy"),
        "{text}"
    );

    // The change rebuilds the artifact and its dependent only.
    let third = family(
        &store,
        project.path(),
        &["build", "--progress", "plain", "--set", "flavour=fancy"],
    );
    assert_success(&third);
    let log = stderr(&third);
    let ran: Vec<&str> = log.lines().filter(|l| l.contains(" DONE ")).collect();
    assert!(
        ran.iter()
            .all(|l| l.starts_with("[tool]") || l.starts_with("[app]")),
        "{log}"
    );
    assert!(
        ran.iter().any(|l| l.starts_with("[tool]")) && ran.iter().any(|l| l.starts_with("[app]")),
        "{log}"
    );
    assert_eq!(
        store.run_sh("app:fancy", "cat /app-saw"),
        "tool fancy\na note from a source\n"
    );
}

#[test]
fn rendered_family_builds_with_buildah() {
    require_tool("buildah");
    let project = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    write_project(project.path(), &debian_rootfs());
    let store = TestStore::new();
    let out_dir = project.path().join("rendered");
    let r = family(
        &store,
        project.path(),
        &["render", "-o", out_dir.to_str().unwrap()],
    );
    assert_success(&r);
    let bake: serde_json::Value =
        serde_json::from_slice(&fs::read(out_dir.join("docker-bake.json")).unwrap()).unwrap();
    assert_eq!(bake["target"]["app"]["contexts"]["tool"], "target:tool");
    assert_eq!(
        fs::read_to_string(out_dir.join("app.Dockerfile"))
            .unwrap()
            .lines()
            .next(),
        Some("FROM debbase")
    );
    let storage =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("buildah-{}", std::process::id()));
    let buildah = format!(
        "buildah --root {0}/root --runroot {0}/run --storage-driver vfs",
        storage.display()
    );
    let run = Command::new("sh")
        .arg(out_dir.join("build-with-buildah.sh"))
        .env("BUILDAH", &buildah)
        .output()
        .unwrap();
    assert_success(&run);
    let c = Command::new("sh")
        .arg("-c")
        .arg(format!("{buildah} from -q app:plain"))
        .output()
        .unwrap();
    assert_success(&c);
    let name = String::from_utf8_lossy(&c.stdout).trim().to_string();
    let saw = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{buildah} run --isolation chroot {name} cat /app-saw"
        ))
        .output()
        .unwrap();
    assert_success(&saw);
    assert_eq!(
        String::from_utf8_lossy(&saw.stdout),
        "tool plain\na note from a source\n"
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("{buildah} rm -a; {buildah} rmi -a -f"))
        .output();
    let _ = fs::remove_dir_all(&storage);
}

#[test]
fn bad_projects_are_input_errors() {
    let store = TestStore::new();
    let project = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    write_project(project.path(), &debian_rootfs());
    let dir = project.path();
    assert_success(&store.kiln(&["images"]));
    let before = store.snapshot();
    let expect = |args: &[&str], needles: &[&str]| {
        let out = family(&store, dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        for n in needles {
            assert!(
                stderr(&out).contains(n),
                "{args:?}: `{n}` not in {}",
                stderr(&out)
            );
        }
    };
    expect(
        &["build", "--set", "pyton=3"],
        &["unknown param `pyton`", "flavour", "greeting"],
    );
    expect(
        &["build", "nosuchtarget"],
        &["unknown target `nosuchtarget`"],
    );
    let toml = fs::read_to_string(dir.join("kiln.toml")).unwrap();
    fs::write(
        dir.join("kiln.toml"),
        format!("{toml}\n[image.extra]\ndockerfile = \"x\"\ncolour = \"red\"\n"),
    )
    .unwrap();
    expect(&["build"], &["kiln.toml:", "colour"]);
    fs::write(dir.join("kiln.toml"), &toml).unwrap();
    fs::write(
        dir.join("debbase.Dockerfile"),
        "FROM debian\nRUN echo {{ gretting }}\n",
    )
    .unwrap();
    expect(&["build"], &["debbase.Dockerfile:2", "undefined"]);
    fs::write(dir.join("debbase.Dockerfile"), "FROM app\n").unwrap();
    expect(&["build"], &["cycle", "app -> debbase -> app"]);
    fs::write(
        dir.join("debbase.Dockerfile"),
        "{% include \"fragments/missing.Dockerfile\" %}\n",
    )
    .unwrap();
    expect(&["build"], &["missing.Dockerfile"]);
    assert_eq!(
        store.snapshot(),
        before,
        "input errors leave the store as it was"
    );

    // A source whose checksum does not match fails and caches nothing.
    write_project(dir, &debian_rootfs());
    fs::write(dir.join("note.txt"), "tampered\n").unwrap();
    let out = family(&store, dir, &["build", "app"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was stored"),
        "{}",
        stderr(&out)
    );
    let images = String::from_utf8_lossy(&store.kiln(&["images"]).stdout).into_owned();
    assert!(!images.contains("kiln-source/note"), "{images}");
}
