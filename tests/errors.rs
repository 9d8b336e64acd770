//! Bad input: a clear message with file:line, exit status 2, and a store
//! left exactly as it was.

mod common;

use common::*;

fn expect_input_error(store: &TestStore, dockerfile: &str, extra: &[&str], needles: &[&str]) {
    let ctx = context(&[("Dockerfile", dockerfile), ("present.txt", "x")]);
    let before = store.snapshot();
    let mut args = vec!["build", "-t", "bad"];
    args.extend_from_slice(extra);
    let ctx_s = ctx.path().to_str().unwrap().to_string();
    args.push(&ctx_s);
    let out = store.kiln(&args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{dockerfile:?} should be an input error:\n{err}"
    );
    for needle in needles {
        assert!(
            err.contains(needle),
            "{dockerfile:?}: `{needle}` missing from:\n{err}"
        );
    }
    assert_eq!(store.snapshot(), before, "{dockerfile:?} changed the store");
}

#[test]
fn bad_dockerfiles_are_input_errors_with_positions() {
    let store = TestStore::with_debian();
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "FROM debian:bookworm\nFOO bar\n",
            &[],
            &["Dockerfile:2:1", "unknown instruction"],
        ),
        (
            "FROM debian:bookworm\nRUN <<EOT\necho open\n",
            &[],
            &["Dockerfile:"],
        ),
        (
            "FROM debian:bookworm\nCOPY --frm=x present.txt /\n",
            &[],
            &["Dockerfile:2:", "unknown flag `--frm`"],
        ),
        (
            "FROM debian:bookworm\nRUN --netwrk=none true\n",
            &[],
            &["Dockerfile:2:", "--netwrk"],
        ),
        (
            "FROM debian:bookworm\nRUN true\nCOPY missing.txt /\n",
            &[],
            &["Dockerfile:3:1", "missing.txt", "not found"],
        ),
        (
            "FROM debian:bookworm\nCOPY --from=nosuchstage /x /x\n",
            &[],
            &["Dockerfile:2:1", "nosuchstage", "kiln import"],
        ),
        (
            "FROM nosuch/image:1\nRUN true\n",
            &[],
            &[
                "Dockerfile:1:1",
                "nosuch/image:1",
                "kiln import",
                "kiln bootstrap debian",
            ],
        ),
        (
            "FROM debian:bookworm\nRUN --mount=type=bind true\n",
            &[],
            &["Dockerfile:2:1", "needs `target`"],
        ),
        (
            "FROM debian:bookworm\nRUN --mount=type=cache,target=/c,sharing=sometimes true\n",
            &[],
            &["Dockerfile:2:1", "sharing=sometimes"],
        ),
        (
            "FROM debian:bookworm\nRUN --mount=type=secret,id=tok,required true\n",
            &[],
            &["Dockerfile:2:1", "secret `tok` is required"],
        ),
        (
            "FROM debian:bookworm\nENV A=1 B\n",
            &[],
            &["Dockerfile:2:", "KEY=value"],
        ),
        (
            "FROM debian:bookworm\nARG X\nRUN true\nENV Y=${X:?must be given}\n",
            &[],
            &["Dockerfile:4:1", "must be given"],
        ),
        (
            "FROM debian:bookworm\nEXPOSE eighty\n",
            &[],
            &["Dockerfile:2:1", "invalid port"],
        ),
        (
            "FROM debian:bookworm AS a\nRUN true\n",
            &["--target", "b"],
            &["target stage `b` not found"],
        ),
        (
            "FROM debian:bookworm\nRUN true\n",
            &["--secret", "id=tok,src=/nonexistent/secret"],
            &["/nonexistent/secret", "does not exist"],
        ),
        ("RUN true\n", &[], &["Dockerfile:1:1", "expected FROM"]),
        (
            "FROM debian:bookworm\nCOPY --from=later /x /x\nFROM debian:bookworm AS later\n",
            &["--target", "0"],
            &["Dockerfile:2:1", "earlier stages"],
        ),
    ];
    for (df, extra, needles) in cases {
        expect_input_error(&store, df, extra, needles);
    }
}

#[test]
fn usage_errors_exit_2() {
    let store = TestStore::new();
    let out = store.kiln(&["build", "--build-arg", "=x", "."]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = store.kiln(&["build", "--output", "type=tar", "."]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = store.kiln(&["inspect", "no-such-image"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no image `no-such-image`"));
}
