use std::collections::BTreeMap;

use super::*;
use crate::frontend::tests::corpus_file;

struct FakeImages;

impl ImageConfigs for FakeImages {
    fn runtime_config(&self, name: &str) -> Result<RuntimeConfig, String> {
        if name.contains("unknown") {
            return Err(format!("image `{name}` is not in the store"));
        }
        Ok(RuntimeConfig {
            env: vec!["PATH=/usr/local/bin:/usr/bin".into()],
            cmd: Some(vec!["base-cmd".into()]),
            ..Default::default()
        })
    }
}

fn args(pairs: &[(&str, &str)]) -> BuildArgs {
    BuildArgs {
        values: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: Default::default(),
    }
}

fn plan_of(name: &str, a: &BuildArgs, target: Option<&str>) -> BuildPlan {
    plan(&corpus_file(name), a, target, &FakeImages).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn runs(stage: &StagePlan) -> Vec<&RunStep> {
    stage
        .steps
        .iter()
        .filter_map(|s| {
            if let StepKind::Run(r) = &s.kind {
                Some(r)
            } else {
                None
            }
        })
        .collect()
}

fn env_of(run: &RunStep) -> BTreeMap<String, String> {
    run.env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn global_args_are_seen_in_a_stage_only_when_redeclared() {
    let p = plan_of("21-", &BuildArgs::default(), None);
    let r = runs(&p.stages[0]);
    assert_eq!(env_of(r[0]).get("V"), None);
    assert_eq!(env_of(r[1]).get("V").map(String::as_str), Some("global"));
    assert_eq!(env_of(r[2]).get("V").map(String::as_str), Some("local"));
    let p = plan_of("21-", &args(&[("V", "cli")]), None);
    let r = runs(&p.stages[0]);
    assert_eq!(env_of(r[0]).get("V"), None);
    assert_eq!(env_of(r[1]).get("V").map(String::as_str), Some("cli"));
    assert_eq!(
        env_of(r[2]).get("V").map(String::as_str),
        Some("cli"),
        "a build argument beats a default"
    );
}

#[test]
fn from_lines_expand_global_args_and_labels_see_env() {
    let p = plan_of("06-", &args(&[("EXTRA", "yes")]), None);
    assert_eq!(
        p.stages[0].base,
        Base::Image("docker.io/library/debian:bookworm".into())
    );
    assert_eq!(p.stages[1].base, Base::Stage(0));
    let c = &p.stages[1].config;
    assert_eq!(c.labels["tag"], "bookworm");
    assert_eq!(c.labels["extra"], "yes");
    assert_eq!(c.env_get("TAG"), Some("bookworm"));
    let p = plan_of("06-", &args(&[("BASE_TAG", "trixie")]), None);
    assert_eq!(
        p.stages[0].base,
        Base::Image("docker.io/library/debian:trixie".into())
    );
    assert_eq!(p.stages[1].config.labels["extra"], "none");
    assert!(
        env_of(runs(&p.stages[0])[0])
            .get("USER_ID")
            .is_some_and(|v| v == "1000")
    );
}

#[test]
fn env_uses_values_from_before_the_instruction() {
    let p = plan_of("14-", &BuildArgs::default(), None);
    let c = &p.stages[0].config;
    assert_eq!(c.env_get("B"), Some("two words"));
    assert_eq!(c.env_get("C"), Some("single $A"));
    assert_eq!(
        c.env_get("D"),
        Some(""),
        "A is not yet set when the same ENV line runs"
    );
    assert_eq!(c.env_get("LEGACY"), Some("value with spaces"));
    assert_eq!(c.env_get("PATH"), Some("/opt/bin:/usr/local/bin:/usr/bin"));
}

#[test]
fn workdir_user_and_their_use_in_run() {
    let p = plan_of("16-", &BuildArgs::default(), None);
    let c = &p.stages[0].config;
    assert_eq!(c.working_dir.as_deref(), Some("/a/c"));
    assert_eq!(c.user.as_deref(), Some("nobody:nogroup"));
    let r = runs(&p.stages[0])[0];
    assert_eq!(
        (r.workdir.as_str(), r.user.as_str()),
        ("/a/c", "nobody:nogroup")
    );
    assert_eq!(r.argv, ["/bin/sh", "-c", "pwd"]);
}

#[test]
fn shell_entrypoint_and_cmd() {
    let p = plan_of("10-", &BuildArgs::default(), None);
    let r = runs(&p.stages[0])[0];
    assert_eq!(
        r.argv,
        ["/bin/bash", "-o", "pipefail", "-c", "echo hi | tee /tmp/x"]
    );
    let c = &p.stages[0].config;
    assert_eq!(
        c.entrypoint.as_deref().unwrap(),
        ["/bin/bash", "-o", "pipefail", "-c", "exec top -b"]
    );
    assert_eq!(c.cmd.as_deref().unwrap(), ["-n", "1"]);
    // An ENTRYPOINT resets a CMD inherited from the base.
    let df =
        crate::frontend::parse(std::path::Path::new("D"), "FROM x\nENTRYPOINT [\"/e\"]\n").unwrap();
    let p = plan(&df, &BuildArgs::default(), None, &FakeImages).unwrap();
    assert_eq!(p.stages[0].config.cmd, None);
}

#[test]
fn ports_volumes_signals_healthchecks_onbuild() {
    let c = plan_of("12-", &BuildArgs::default(), None).stages[0]
        .config
        .clone();
    assert_eq!(
        c.exposed_ports.keys().collect::<Vec<_>>(),
        ["443/tcp", "53/udp", "80/tcp", "8000-8010/tcp"]
    );
    assert_eq!(c.labels["maintainer"], "Jane Doe <jane@example.com>");
    let c = plan_of("09-", &BuildArgs::default(), None).stages[0]
        .config
        .clone();
    assert_eq!(c.on_build, ["COPY . /app/src", "RUN make -C /app/src"]);
    assert_eq!(
        c.volumes.keys().collect::<Vec<_>>(),
        ["/cache", "/data", "/logs"]
    );
    assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
    let c = plan_of("18-", &BuildArgs::default(), None).stages[0]
        .config
        .clone();
    let h = c.healthcheck.unwrap();
    assert_eq!(h.test, ["CMD", "redis-cli", "ping"]);
    assert_eq!(h.interval, Some(90_000_000_000));
    assert_eq!(h.start_period, Some(5_000_000_000));
}

#[test]
fn only_needed_stages_in_dependency_order() {
    let p = plan_of("20-", &BuildArgs::default(), None);
    let order: Vec<usize> = p.stages.iter().map(|s| s.index).collect();
    assert_eq!(order, [0, 1, 3, 4], "the test stage is not needed");
    let p = plan_of("20-", &BuildArgs::default(), Some("test"));
    assert_eq!(
        p.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let p = plan_of("02-", &BuildArgs::default(), None);
    let StepKind::Copy(c) = &p.stages[1].steps[0].kind else {
        panic!()
    };
    assert_eq!(c.from, SourceRef::Stage(0));
    assert_eq!(c.dest, "/app");
    assert!(!c.dest_is_dir);
}

#[test]
fn copy_destinations_resolve_against_workdir() {
    let p = plan_of("03-", &BuildArgs::default(), None);
    let StepKind::Copy(c) = &p.stages[0].steps[1].kind else {
        panic!()
    };
    assert_eq!((c.dest.as_str(), c.dest_is_dir), ("/usr/src/app", true));
    let StepKind::Copy(c) = &p.stages[0].steps[3].kind else {
        panic!()
    };
    assert_eq!(c.owner.as_deref(), Some("node:node"));
    let p = plan_of("13-", &BuildArgs::default(), None);
    let StepKind::Copy(c) = &p.stages[1].steps[1].kind else {
        panic!()
    };
    assert_eq!(c.chmod, Some(0o755));
}

#[test]
fn mounts_platform_args_and_secrets() {
    let p = plan_of("08-", &BuildArgs::default(), None);
    let r = runs(&p.stages[1]);
    assert_eq!(r[0].mounts[0].from, SourceRef::Stage(0));
    assert!(p.stages[1].deps.contains(&0));
    assert_eq!(r[2].network, Network::None);
    let p = plan_of("17-", &BuildArgs::default(), None);
    assert_eq!(
        env_of(runs(&p.stages[0])[0])["TARGETARCH"],
        crate::image::host_architecture()
    );
    let err = plan(
        &corpus_file("07-"),
        &BuildArgs::default(),
        None,
        &FakeImages,
    )
    .unwrap_err();
    assert_eq!(err.loc.line, 5);
    assert!(
        err.message.contains("secret `token` is required"),
        "{}",
        err.message
    );
    let mut with = BuildArgs::default();
    with.secrets.insert("token".into());
    assert!(plan(&corpus_file("07-"), &with, None, &FakeImages).is_ok());
}

#[test]
fn proxies_reach_run_but_not_the_key() {
    let p = plan_of(
        "16-",
        &args(&[("HTTPS_PROXY", "http://proxy:3128"), ("UNUSED", "1")]),
        None,
    );
    let r = runs(&p.stages[0])[0];
    assert_eq!(r.proxy_env, ["HTTPS_PROXY=http://proxy:3128"]);
    assert!(!r.env.iter().any(|e| e.contains("proxy")));
    assert!(!serde_json::to_string(r).unwrap().contains("proxy"));
    assert_eq!(p.unused_args, ["UNUSED"]);
}

#[test]
fn unknown_images_and_stages_are_located() {
    let df = crate::frontend::parse(std::path::Path::new("D"), "FROM unknown/base\n").unwrap();
    let e = plan(&df, &BuildArgs::default(), None, &FakeImages).unwrap_err();
    assert_eq!((e.loc.line, e.message.contains("unknown/base")), (1, true));
    let df = crate::frontend::parse(
        std::path::Path::new("D"),
        "FROM x\nRUN true\nCOPY --from=unknownstage /a /b\n",
    )
    .unwrap();
    let e = plan(&df, &BuildArgs::default(), None, &FakeImages).unwrap_err();
    assert_eq!(e.loc.line, 3);
    let df = crate::frontend::parse(std::path::Path::new("D"), "FROM x\n").unwrap();
    let e = plan(&df, &BuildArgs::default(), Some("nope"), &FakeImages).unwrap_err();
    assert!(e.message.contains("target stage `nope` not found"));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Some(30_000_000_000));
    assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
    assert_eq!(parse_duration("500ms"), Some(500_000_000));
    assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration(""), None);
}
