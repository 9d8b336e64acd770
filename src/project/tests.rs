use super::*;

const TOML: &str = r#"
[params]
debian = "bookworm"
python = "3.11.2"
pkgrel = 1
optimize = false

[matrix]
debian = ["bookworm", "trixie"]
python = ["3.11.2", "3.13.5"]
exclude = [{ debian = "bookworm", python = "3.13.5" }]

[base.debian]
suite = "{{ debian }}"

[source.cpython]
url = "http://example.invalid/Python-{{ python }}.tgz"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[image.debbase]
dockerfile = "debbase.Dockerfile"
tags = ["debbase:{{ debian }}"]

[artifact.deb]
dockerfile = "deb.Dockerfile"

[image.python]
dockerfile = "python.Dockerfile"
tags = ["python:{{ python }}-{{ debian }}"]
"#;

fn project() -> (tempfile::TempDir, Project) {
    let t = tempfile::tempdir().unwrap();
    let w = |n: &str, s: &str| std::fs::write(t.path().join(n), s).unwrap();
    w("kiln.toml", TOML);
    w("debbase.Dockerfile", "FROM debian\nRUN true\n");
    w(
        "deb.Dockerfile",
        "FROM debbase AS build\nRUN --mount=type=bind,from=cpython,target=/src true\nFROM scratch\nCOPY --from=build /x /x\n",
    );
    w(
        "python.Dockerfile",
        "FROM debbase\nRUN --mount=type=bind,from=deb,target=/deb dpkg -i /deb/*.deb # {{ pkgrel }}\n",
    );
    let p = Project::load(t.path()).unwrap();
    (t, p)
}

#[test]
fn params_sets_and_matrix() {
    let (_t, p) = project();
    let d = p.defaults();
    assert_eq!(
        (d["pkgrel"].as_str(), d["optimize"].as_str()),
        ("1", "false")
    );
    let sets = p.param_sets(&["python=3.13.5".into()], false).unwrap();
    assert_eq!(sets[0]["python"], "3.13.5");
    let m = p.param_sets(&[], true).unwrap();
    let combos: Vec<(String, String)> = m
        .iter()
        .map(|c| (c["debian"].clone(), c["python"].clone()))
        .collect();
    assert_eq!(
        combos,
        [
            ("bookworm".into(), "3.11.2".into()),
            ("trixie".into(), "3.11.2".into()),
            ("trixie".into(), "3.13.5".into())
        ]
    );
    let pinned = p.param_sets(&["debian=trixie".into()], true).unwrap();
    assert_eq!(pinned.len(), 2);
    match p.param_sets(&["pyton=3".into()], false).unwrap_err() {
        ProjectError::UnknownParam { name, known } => {
            assert_eq!(name, "pyton");
            assert!(known.contains(&"python".to_string()));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn graph_orders_dependencies_and_only_what_is_needed() {
    let (_t, p) = project();
    let g = p.graph(&p.defaults(), &["python".into()]).unwrap();
    let names: Vec<&str> = g.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["cpython", "debian", "debbase", "deb", "python"]);
    assert_eq!(g[2].deps, ["debian"], "FROM debian names the base target");
    assert_eq!(g[3].deps, ["cpython", "debbase"]);
    assert!(g[4].dockerfile.as_ref().unwrap().text.contains("# 1"));
    let all = p.graph(&p.defaults(), &[]).unwrap();
    assert_eq!(all.len(), 5);
    assert!(matches!(
        p.graph(&p.defaults(), &["nope".into()]),
        Err(ProjectError::UnknownTarget { .. })
    ));
}

#[test]
fn cycles_are_printed() {
    let (t, _) = project();
    std::fs::write(t.path().join("debbase.Dockerfile"), "FROM python\n").unwrap();
    let p = Project::load(t.path()).unwrap();
    match p.graph(&p.defaults(), &["python".into()]).unwrap_err() {
        ProjectError::Cycle(c) => assert_eq!(c, "python -> deb -> debbase -> python"),
        other => panic!("{other}"),
    }
}

#[test]
fn schema_errors_have_positions() {
    let bad = |text: &str| {
        Project::parse(Path::new("/p"), Path::new("/p/kiln.toml"), text)
            .unwrap_err()
            .to_string()
    };
    let e = bad("[params]\na = \"1\"\n\n[image.x]\ndockerfile = \"D\"\ncolour = \"blue\"\n");
    assert!(e.starts_with("/p/kiln.toml:6:1"), "{e}");
    assert!(e.contains("colour"), "{e}");
    let e = bad("[imgae.x]\n");
    assert!(e.contains("kiln.toml:1:"), "{e}");
    let e = bad("[source.s]\nurl = \"http://x\"\nsha256 = \"abc\"\n");
    assert!(e.contains("64 hex"), "{e}");
    let e = bad("[base.b]\nvariant = \"minbase\"\n");
    assert!(e.contains("exactly one of `suite` or `rootfs`"), "{e}");
    let e = bad("[params]\na = \"1\"\n[matrix]\nb = [\"x\"]\n");
    assert!(e.contains("matrix param `b`"), "{e}");
}
