use std::path::Path;

use super::*;

macro_rules! corpus {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../tests/dockerfiles/", $name)))),*]
    };
}

/// Real-world-shaped Dockerfiles, shared with the planner's tests.
pub const CORPUS: &[(&str, &str)] = corpus![
    "01-python-slim.Dockerfile",
    "02-multistage-go.Dockerfile",
    "03-node.Dockerfile",
    "04-heredoc.Dockerfile",
    "05-escape-directive.Dockerfile",
    "06-args-everywhere.Dockerfile",
    "07-secrets.Dockerfile",
    "08-bind-mounts.Dockerfile",
    "09-onbuild.Dockerfile",
    "10-shell.Dockerfile",
    "11-add.Dockerfile",
    "12-maintainer-expose.Dockerfile",
    "13-copy-flags.Dockerfile",
    "14-env-forms.Dockerfile",
    "15-comments-continuations.Dockerfile",
    "16-user-workdir.Dockerfile",
    "17-platform.Dockerfile",
    "18-healthcheck-none.Dockerfile",
    "19-cache-sharing.Dockerfile",
    "20-many-stages.Dockerfile",
    "21-arg-scope.Dockerfile",
];

pub fn corpus_file(name: &str) -> Dockerfile {
    let (_, text) = CORPUS
        .iter()
        .find(|(n, _)| n.starts_with(name))
        .expect("corpus file");
    parse(Path::new(name), text).unwrap()
}

fn instructions(name: &str) -> Vec<Instruction> {
    corpus_file(name)
        .stages
        .last()
        .unwrap()
        .instructions
        .iter()
        .map(|i| i.value.clone())
        .collect()
}

fn err(text: &str) -> (usize, usize, String) {
    match parse(Path::new("Dockerfile"), text).unwrap_err() {
        FrontendError::Syntax { loc, message } => (loc.line, loc.column, message),
        other => panic!("{other}"),
    }
}

#[test]
fn the_whole_corpus_parses() {
    let stages: Vec<usize> = CORPUS
        .iter()
        .map(|(n, t)| {
            parse(Path::new(n), t)
                .unwrap_or_else(|e| panic!("{n}: {e}"))
                .stages
                .len()
        })
        .collect();
    assert_eq!(
        stages,
        [
            1, 2, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 5, 1
        ]
    );
}

#[test]
fn continuations_join_and_drop_inner_comments() {
    let inst = instructions("15-");
    assert_eq!(
        inst[0],
        Instruction::Run(Run {
            mounts: vec![],
            network: Network::Host,
            command: CommandLine::Shell(
                "apt-get update &&     apt-get install -y       make     && true".into()
            )
        })
    );
    let df = corpus_file("15-");
    assert_eq!(df.stages[0].instructions[1].loc.line, 10);
}

#[test]
fn heredocs_become_scripts_or_shell_text() {
    let inst = instructions("04-");
    match &inst[0] {
        Instruction::Run(r) => assert_eq!(
            r.command,
            CommandLine::Shell("apt-get update\napt-get install -y curl\n".into())
        ),
        other => panic!("{other:?}"),
    }
    match &inst[1] {
        Instruction::Copy(c) => {
            assert_eq!(c.dest, "/etc/motd");
            assert!(
                matches!(&c.sources[0], CopySource::HereDoc { name, expand: false, .. } if name == "EOT"),
                "{:?}",
                c.sources
            );
        }
        other => panic!("{other:?}"),
    }
    match &inst[2] {
        Instruction::Run(r) => assert_eq!(
            r.command,
            CommandLine::Shell("<<EOT bash\nset -e\necho \"$HOME\"\nEOT".into())
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn escape_directive_changes_continuations() {
    let df = corpus_file("05-");
    assert_eq!(df.escape, '`');
    let inst = instructions("05-");
    assert_eq!(
        inst[0],
        Instruction::Run(Run {
            mounts: vec![],
            network: Network::Host,
            command: CommandLine::Shell("powershell -Command     Write-Host hello".into())
        })
    );
    assert_eq!(inst[1], Instruction::Workdir("C:\\app".into()));
}

#[test]
fn flags_are_collected() {
    let inst = instructions("13-");
    let Instruction::Copy(c) = &inst[0] else {
        panic!()
    };
    assert!(c.link);
    assert_eq!(c.from.as_deref(), Some("src"));
    let Instruction::Copy(c) = &inst[1] else {
        panic!()
    };
    assert_eq!(
        (c.chmod.as_deref(), c.chown.as_deref()),
        (Some("755"), Some("root:root"))
    );
    let Instruction::Copy(c) = &inst[2] else {
        panic!()
    };
    assert_eq!(c.exclude, ["*.md"]);
    let Instruction::Copy(c) = &inst[3] else {
        panic!()
    };
    assert_eq!(c.sources, [CopySource::Path("with space.txt".into())]);
    let inst = instructions("08-");
    let Instruction::Run(r) = &inst[0] else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 2);
    let Instruction::Run(r) = &inst[2] else {
        panic!()
    };
    assert_eq!(r.network, Network::None);
    let Instruction::Copy(a) = &instructions("11-")[1] else {
        panic!()
    };
    assert!(a.is_add && a.checksum.as_deref().unwrap().starts_with("sha256:"));
}

#[test]
fn config_instructions() {
    let inst = instructions("09-");
    assert_eq!(inst[0], Instruction::Onbuild("COPY . /app/src".into()));
    assert_eq!(inst[2], Instruction::Stopsignal("SIGTERM".into()));
    assert_eq!(
        inst[3],
        Instruction::Volume(vec!["/data".into(), "/logs".into()])
    );
    assert_eq!(inst[4], Instruction::Volume(vec!["/cache".into()]));
    let inst = instructions("10-");
    assert_eq!(
        inst[0],
        Instruction::Shell(vec![
            "/bin/bash".into(),
            "-o".into(),
            "pipefail".into(),
            "-c".into()
        ])
    );
    assert_eq!(
        inst[2],
        Instruction::Entrypoint(CommandLine::Shell("exec top -b".into()))
    );
    assert_eq!(
        inst[3],
        Instruction::Cmd(CommandLine::Exec(vec!["-n".into(), "1".into()]))
    );
    let inst = instructions("12-");
    assert_eq!(
        inst[0],
        Instruction::Maintainer("Jane Doe <jane@example.com>".into())
    );
    assert_eq!(
        inst[1],
        Instruction::Expose("80 443/tcp 53/udp 8000-8010".into())
    );
    let inst = instructions("18-");
    assert_eq!(inst[0], Instruction::Healthcheck(Healthcheck::None));
    assert!(
        matches!(&inst[1], Instruction::Healthcheck(Healthcheck::Cmd { interval: Some(i), .. }) if i == "1m30s")
    );
}

#[test]
fn stages_args_and_platforms() {
    let df = corpus_file("06-");
    assert_eq!(
        df.global_args
            .iter()
            .map(|a| a.value.name.as_str())
            .collect::<Vec<_>>(),
        ["REGISTRY", "BASE_TAG"]
    );
    assert_eq!(df.stages[0].base, "${REGISTRY}/library/debian:${BASE_TAG}");
    assert_eq!(df.stages[0].name.as_deref(), Some("base"));
    let df = corpus_file("17-");
    assert_eq!(df.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(
        df.find_stage("BUILD").unwrap().index,
        0,
        "stage names are case-insensitive"
    );
    assert_eq!(df.find_stage("1").unwrap().index, 1);
}

#[test]
fn env_pairs_keep_quotes_for_the_planner() {
    let inst = instructions("14-");
    let Instruction::Env(pairs) = &inst[0] else {
        panic!()
    };
    assert_eq!(pairs[1], ("B".to_string(), "\"two words\"".to_string()));
    assert_eq!(pairs[2], ("C".to_string(), "'single $A'".to_string()));
    assert_eq!(
        inst[1],
        Instruction::Env(vec![("LEGACY".into(), "value with spaces".into())])
    );
}

#[test]
fn error_positions() {
    assert_eq!(err("FROM a\nFOO bar\n").0, 2);
    let (line, col, msg) = err("FROM a\nCOPY --nope=1 a b\n");
    assert_eq!((line, col), (2, 6));
    assert!(msg.contains("unknown flag `--nope` for COPY"), "{msg}");
    let (line, _, msg) = err("FROM a\nRUN --mount=type=cache,target=/x --oops true\n");
    assert_eq!(line, 2);
    assert!(msg.contains("--oops"), "{msg}");
    let (line, _, msg) = err("FROM a AS x\nFROM b AS X\n");
    assert_eq!(line, 2);
    assert!(msg.contains("duplicate stage name"), "{msg}");
    let (_, _, msg) = err("FROM a\nONBUILD FROM b\n");
    assert!(msg.contains("ONBUILD"), "{msg}");
    let (_, _, msg) = err("FROM a AS 1bad\n");
    assert!(msg.contains("invalid stage name"), "{msg}");
    let (line, _, msg) = err("FROM a\nRUN --network=bridge true\n");
    assert_eq!(line, 2);
    assert!(msg.contains("--network=bridge"), "{msg}");
    let (_, _, msg) = err("FROM a\nCOPY --chmod=rwx a b\n");
    assert!(msg.contains("octal"), "{msg}");
    let (_, _, msg) = err("FROM a\nARG bad-name\n");
    assert!(msg.contains("invalid ARG name"), "{msg}");
    let (line, col, _) = err("FROM a\nENV A=\"open\n");
    assert_eq!((line, col), (2, 5));
    let (_, _, msg) = err("# just a comment\n");
    assert!(msg.contains("FROM"), "{msg}");
}

#[test]
fn instruction_text_is_kept_for_history() {
    let df = corpus_file("15-");
    assert!(
        df.stages[0].instructions[0]
            .text
            .starts_with("RUN apt-get update && \\\n")
    );
    assert!(!df.stages[0].instructions[0].text.ends_with('\n'));
}
