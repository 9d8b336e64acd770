//! Dockerfile stages → steps, with every variable expanded.
//!
//! Pure: given the parsed Dockerfile, the build arguments, the target and a
//! way to read base image configs, it decides which stages are needed, in
//! what order, and what each instruction does, applying Docker's ARG rules
//! (global ARGs are seen only by FROM unless redeclared in a stage; build
//! arguments override defaults; ENV beats ARG) and the image config changes
//! of every config-only instruction. Everything that can be wrong with the
//! input is found here, before anything runs or is written.

mod args;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::frontend::expand::{Vars, expand_word, expand_words};
use crate::frontend::mount::{MountSpec, parse_mount};
use crate::frontend::{
    CommandLine, CopySource, Dockerfile, Healthcheck, Instruction, Location, Network, Stage,
};
use crate::image::{Empty, HealthConfig, RuntimeConfig};

pub use args::{BuildArgs, PROXY_ARGS};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
#[error("{loc}: {message}")]
pub struct PlanError {
    pub loc: Location,
    pub message: String,
}

fn err(loc: &Location, message: impl Into<String>) -> PlanError {
    PlanError {
        loc: loc.clone(),
        message: message.into(),
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Base {
    Scratch,
    Stage(usize),
    Image(String),
}

/// Where `--from` (COPY, RUN --mount) reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceRef {
    Context,
    Stage(usize),
    Image(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CopyInput {
    /// A path or glob under the context or the `from` root.
    Path(String),
    /// An ADD URL, checked against `--checksum` when given.
    Url {
        url: String,
        checksum: Option<String>,
    },
    /// A heredoc, already expanded if it asked to be.
    Inline { name: String, content: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyStep {
    pub is_add: bool,
    pub from: SourceRef,
    pub inputs: Vec<CopyInput>,
    pub dest: String,
    pub dest_is_dir: bool,
    pub owner: Option<String>,
    pub chmod: Option<u32>,
    pub exclude: Vec<String>,
}

/// A build mount with its `from` resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMount {
    pub spec: MountSpec,
    pub from: SourceRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStep {
    pub argv: Vec<String>,
    /// ENV and ARGs in scope, `KEY=value`.
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub mounts: Vec<PlannedMount>,
    pub network: Network,
    /// Proxy variables: in the environment, never in the key or history.
    #[serde(skip)]
    pub proxy_env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    /// Changes only the image config.
    Config,
    Run(RunStep),
    Copy(CopyStep),
}

#[derive(Debug, Clone)]
pub struct Step {
    pub loc: Location,
    /// The instruction, for history and progress.
    pub created_by: String,
    pub kind: StepKind,
    /// The runtime config after this step.
    pub config: RuntimeConfig,
}

#[derive(Debug, Clone)]
pub struct StagePlan {
    pub index: usize,
    pub name: Option<String>,
    pub loc: Location,
    pub base: Base,
    pub steps: Vec<Step>,
    pub config: RuntimeConfig,
    /// Stages this one reads (FROM, COPY --from, RUN --mount from=).
    pub deps: BTreeSet<usize>,
}

impl StagePlan {
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// Only the stages the target needs, dependencies first.
    pub stages: Vec<StagePlan>,
    pub target: usize,
    /// Build arguments nobody declared (Docker warns about these).
    pub unused_args: Vec<String>,
}

impl BuildPlan {
    pub fn stage(&self, index: usize) -> &StagePlan {
        self.stages
            .iter()
            .find(|s| s.index == index)
            .expect("planned stage")
    }
}

/// Base images' runtime configs come from the store; the planner asks.
pub trait ImageConfigs {
    fn runtime_config(&self, name: &str) -> Result<RuntimeConfig, String>;
}

/// Plans the build of `target` (a stage name or index; the last stage when
/// `None`).
pub fn plan(
    df: &Dockerfile,
    build_args: &BuildArgs,
    target: Option<&str>,
    images: &dyn ImageConfigs,
) -> Result<BuildPlan, PlanError> {
    let target_index = match target {
        None => df.stages.len() - 1,
        Some(t) => df.find_stage(t).map(|s| s.index).ok_or_else(|| {
            let names: Vec<String> = df
                .stages
                .iter()
                .map(|s| s.name.clone().unwrap_or_else(|| s.index.to_string()))
                .collect();
            err(
                &df.stages[0].loc,
                format!("target stage `{t}` not found; stages: {}", names.join(", ")),
            )
        })?,
    };
    let globals = args::global_values(df, build_args)?;
    let mut planner = Planner {
        df,
        build_args,
        images,
        globals,
        planned: BTreeMap::new(),
        used_args: BTreeSet::new(),
    };
    planner.plan_stage(target_index, &mut Vec::new())?;
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    topo(&planner.planned, target_index, &mut seen, &mut order);
    let unused_args = build_args
        .values
        .keys()
        .filter(|k| !planner.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut planned = planner.planned;
    let stages = order
        .into_iter()
        .map(|i| planned.remove(&i).expect("planned"))
        .collect();
    Ok(BuildPlan {
        stages,
        target: target_index,
        unused_args,
    })
}

fn topo(
    planned: &BTreeMap<usize, StagePlan>,
    at: usize,
    seen: &mut BTreeSet<usize>,
    order: &mut Vec<usize>,
) {
    if !seen.insert(at) {
        return;
    }
    for dep in &planned[&at].deps {
        topo(planned, *dep, seen, order);
    }
    order.push(at);
}

struct Planner<'a> {
    df: &'a Dockerfile,
    build_args: &'a BuildArgs,
    images: &'a dyn ImageConfigs,
    globals: BTreeMap<String, String>,
    planned: BTreeMap<usize, StagePlan>,
    used_args: BTreeSet<String>,
}

/// The state that instructions change as a stage goes on.
struct Scope {
    config: RuntimeConfig,
    args: BTreeMap<String, String>,
    cmd_set_here: bool,
}

impl Scope {
    /// Variables for expansion: ARGs, then ENV on top.
    fn vars(&self) -> Vars {
        let mut vars = self.args.clone();
        for e in &self.config.env {
            if let Some((k, v)) = e.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        vars
    }
}

impl Planner<'_> {
    fn expand(&self, loc: &Location, scope: &Scope, word: &str) -> Result<String, PlanError> {
        expand_word(word, &scope.vars(), self.df.escape).map_err(|e| err(loc, e.to_string()))
    }

    /// A `--from` or FROM name: an earlier stage, or an image.
    fn source_ref(
        &mut self,
        loc: &Location,
        name: &str,
        current: usize,
        chain: &mut Vec<usize>,
    ) -> Result<SourceRef, PlanError> {
        if let Some(stage) = self.df.find_stage(name) {
            if stage.index >= current {
                return Err(err(
                    loc,
                    format!(
                        "stage `{name}` is defined at or after this one; a stage can only use earlier stages"
                    ),
                ));
            }
            self.plan_stage(stage.index, chain)?;
            return Ok(SourceRef::Stage(stage.index));
        }
        if name.eq_ignore_ascii_case("scratch") {
            return Err(err(loc, "`scratch` has no files to copy or mount"));
        }
        self.images.runtime_config(name).map_err(|m| err(loc, m))?;
        Ok(SourceRef::Image(name.to_string()))
    }

    fn plan_stage(&mut self, index: usize, chain: &mut Vec<usize>) -> Result<(), PlanError> {
        if self.planned.contains_key(&index) {
            return Ok(());
        }
        if chain.contains(&index) {
            let stage = &self.df.stages[index];
            return Err(err(&stage.loc, "stages refer to each other in a cycle"));
        }
        chain.push(index);
        let stage: &Stage = &self.df.stages[index];
        let loc = stage.loc.clone();
        let base_name = expand_word(&stage.base, &self.globals, self.df.escape)
            .map_err(|e| err(&loc, e.to_string()))?;
        for name in self.df.global_args.iter().map(|a| &a.value.name) {
            if stage.base.contains(name.as_str()) {
                self.used_args.insert(name.clone());
            }
        }
        let mut deps = BTreeSet::new();
        let (base, config) = if base_name.eq_ignore_ascii_case("scratch") {
            (Base::Scratch, RuntimeConfig::default())
        } else if let Some(base_stage) = self
            .df
            .find_stage(&base_name)
            .filter(|s| s.name.is_some() && s.index < index)
        {
            let i = base_stage.index;
            self.plan_stage(i, chain)?;
            deps.insert(i);
            (Base::Stage(i), self.planned[&i].config.clone())
        } else {
            let config = self
                .images
                .runtime_config(&base_name)
                .map_err(|m| err(&loc, m))?;
            (Base::Image(base_name.clone()), config)
        };
        let mut scope = Scope {
            config,
            args: BTreeMap::new(),
            cmd_set_here: false,
        };
        if scope.config.env_get("PATH").is_none() && matches!(base, Base::Scratch) {
            // Docker gives scratch stages a PATH for RUN, not the image.
        }
        let mut steps = Vec::new();
        for inst in &stage.instructions {
            let kind =
                self.instruction(index, &inst.loc, &inst.value, &mut scope, &mut deps, chain)?;
            steps.push(Step {
                loc: inst.loc.clone(),
                created_by: inst.text.clone(),
                kind,
                config: scope.config.clone(),
            });
        }
        chain.pop();
        self.planned.insert(
            index,
            StagePlan {
                index,
                name: stage.name.clone(),
                loc,
                base,
                steps,
                config: scope.config,
                deps,
            },
        );
        Ok(())
    }

    fn instruction(
        &mut self,
        stage: usize,
        loc: &Location,
        inst: &Instruction,
        scope: &mut Scope,
        deps: &mut BTreeSet<usize>,
        chain: &mut Vec<usize>,
    ) -> Result<StepKind, PlanError> {
        let c = &mut scope.config;
        match inst {
            Instruction::Arg(decls) => {
                for d in decls {
                    self.used_args.insert(d.name.clone());
                    let value = match (self.build_args.values.get(&d.name), &d.default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(default)) => Some(self.expand(loc, scope, default)?),
                        (None, None) => self.globals.get(&d.name).cloned(),
                    };
                    match value {
                        Some(v) => scope.args.insert(d.name.clone(), v),
                        None => scope.args.remove(&d.name),
                    };
                }
                return Ok(StepKind::Config);
            }
            Instruction::Env(pairs) => {
                let vars = scope.vars();
                let mut expanded = Vec::new();
                for (k, v) in pairs {
                    let value = expand_word(v, &vars, self.df.escape)
                        .map_err(|e| err(loc, e.to_string()))?;
                    expanded.push((k.clone(), value));
                }
                for (k, v) in expanded {
                    scope.config.env_set(&k, &v);
                }
            }
            Instruction::Label(pairs) => {
                for (k, v) in pairs {
                    let key = self.expand(loc, scope, k)?;
                    let value = self.expand(loc, scope, v)?;
                    scope.config.labels.insert(key, value);
                }
            }
            Instruction::Maintainer(m) => {
                c.labels.insert("maintainer".to_string(), m.clone());
            }
            Instruction::Workdir(w) => {
                let w = self.expand(loc, scope, w)?;
                let base = scope
                    .config
                    .working_dir
                    .clone()
                    .unwrap_or_else(|| "/".to_string());
                scope.config.working_dir = Some(absolute(&base, &w));
            }
            Instruction::User(u) => {
                let u = self.expand(loc, scope, u)?;
                if u.is_empty() {
                    return Err(err(loc, "USER needs a user name or id"));
                }
                scope.config.user = Some(u);
            }
            Instruction::Cmd(cmd) => {
                scope.config.cmd = Some(command_argv(cmd, &scope.config));
                scope.cmd_set_here = true;
            }
            Instruction::Entrypoint(cmd) => {
                let argv = command_argv(cmd, &scope.config);
                scope.config.entrypoint = if argv.is_empty() { None } else { Some(argv) };
                if !scope.cmd_set_here {
                    scope.config.cmd = None;
                }
            }
            Instruction::Shell(shell) => {
                if shell.is_empty() {
                    return Err(err(
                        loc,
                        "SHELL needs a JSON array with at least one element",
                    ));
                }
                c.shell = Some(shell.clone());
            }
            Instruction::Expose(text) => {
                let words = expand_words(text, &scope.vars(), self.df.escape)
                    .map_err(|e| err(loc, e.to_string()))?;
                for w in words {
                    let port = normalize_port(&w).ok_or_else(|| {
                        err(
                            loc,
                            format!("invalid port `{w}`; use PORT[/tcp|/udp|/sctp]"),
                        )
                    })?;
                    scope.config.exposed_ports.insert(port, Empty {});
                }
            }
            Instruction::Volume(vols) => {
                for v in vols {
                    let v = self.expand(loc, scope, v)?;
                    if v.is_empty() {
                        return Err(err(loc, "VOLUME needs a path"));
                    }
                    scope.config.volumes.insert(v, Empty {});
                }
            }
            Instruction::Stopsignal(s) => {
                let s = self.expand(loc, scope, s)?;
                if !valid_signal(&s) {
                    return Err(err(loc, format!("invalid signal `{s}`")));
                }
                scope.config.stop_signal = Some(s);
            }
            Instruction::Healthcheck(h) => {
                c.healthcheck = Some(match h {
                    Healthcheck::None => HealthConfig {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    Healthcheck::Cmd {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let mut t = match test {
                            CommandLine::Exec(v) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(v.iter().cloned());
                                t
                            }
                            CommandLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        };
                        t.shrink_to_fit();
                        let dur =
                            |v: &Option<String>, what: &str| -> Result<Option<u64>, PlanError> {
                                v.as_ref()
                                    .map(|s| {
                                        parse_duration(s).ok_or_else(|| {
                                        err(
                                            loc,
                                            format!(
                                                "--{what}={s} is not a duration like 30s or 1m30s"
                                            ),
                                        )
                                    })
                                    })
                                    .transpose()
                            };
                        HealthConfig {
                            test: t,
                            interval: dur(interval, "interval")?,
                            timeout: dur(timeout, "timeout")?,
                            start_period: dur(start_period, "start-period")?,
                            start_interval: dur(start_interval, "start-interval")?,
                            retries: retries
                                .as_ref()
                                .map(|r| {
                                    r.parse().map_err(|_| {
                                        err(loc, format!("--retries={r} is not a number"))
                                    })
                                })
                                .transpose()?,
                        }
                    }
                });
            }
            Instruction::Onbuild(text) => c.on_build.push(text.clone()),
            Instruction::Run(run) => return self.run(stage, loc, run, scope, deps, chain),
            Instruction::Copy(copy) => return self.copy(stage, loc, copy, scope, deps, chain),
        }
        Ok(StepKind::Config)
    }

    fn run(
        &mut self,
        stage: usize,
        loc: &Location,
        run: &crate::frontend::Run,
        scope: &Scope,
        deps: &mut BTreeSet<usize>,
        chain: &mut Vec<usize>,
    ) -> Result<StepKind, PlanError> {
        let mut mounts = Vec::new();
        for raw in &run.mounts {
            let text = self.expand(loc, scope, raw)?;
            let spec = parse_mount(&text).map_err(|m| err(loc, format!("--mount={text}: {m}")))?;
            let from = match &spec {
                MountSpec::Bind { from: Some(f), .. } => self.source_ref(loc, f, stage, chain)?,
                _ => SourceRef::Context,
            };
            if let SourceRef::Stage(i) = from {
                deps.insert(i);
            }
            if let MountSpec::Secret { id, required, .. } = &spec
                && *required
                && !self.build_args.secrets.contains(id)
            {
                return Err(err(
                    loc,
                    format!("secret `{id}` is required; pass it with --secret id={id},src=FILE"),
                ));
            }
            mounts.push(PlannedMount { spec, from });
        }
        let mut env: Vec<String> = scope.config.env.clone();
        if scope.config.env_get("PATH").is_none() {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        for (k, v) in &scope.args {
            if scope.config.env_get(k).is_none() {
                env.push(format!("{k}={v}"));
            }
        }
        let proxy_env = PROXY_ARGS
            .iter()
            .filter_map(|k| self.build_args.values.get(*k).map(|v| format!("{k}={v}")))
            .filter(|e| {
                !env.iter()
                    .any(|x| x.split('=').next() == e.split('=').next())
            })
            .collect();
        Ok(StepKind::Run(RunStep {
            argv: command_argv(&run.command, &scope.config),
            env,
            user: scope
                .config
                .user
                .clone()
                .unwrap_or_else(|| "root".to_string()),
            workdir: scope
                .config
                .working_dir
                .clone()
                .unwrap_or_else(|| "/".to_string()),
            mounts,
            network: run.network,
            proxy_env,
        }))
    }

    fn copy(
        &mut self,
        stage: usize,
        loc: &Location,
        copy: &crate::frontend::Copy,
        scope: &Scope,
        deps: &mut BTreeSet<usize>,
        chain: &mut Vec<usize>,
    ) -> Result<StepKind, PlanError> {
        let name = if copy.is_add { "ADD" } else { "COPY" };
        if copy.sources.is_empty() {
            return Err(err(
                loc,
                format!("{name} needs at least one source and a destination"),
            ));
        }
        let from = match &copy.from {
            None => SourceRef::Context,
            Some(f) => {
                let f = self.expand(loc, scope, f)?;
                self.source_ref(loc, &f, stage, chain)?
            }
        };
        if let SourceRef::Stage(i) = from {
            deps.insert(i);
        }
        let mut inputs = Vec::new();
        for s in &copy.sources {
            inputs.push(match s {
                CopySource::Path(p) => {
                    let p = self.expand(loc, scope, p)?;
                    if copy.is_add && (p.starts_with("http://") || p.starts_with("https://")) {
                        let checksum = copy
                            .checksum
                            .as_ref()
                            .map(|c| self.expand(loc, scope, c))
                            .transpose()?;
                        if let Some(c) = &checksum
                            && crate::digest::sha256_hex(c).is_none()
                        {
                            return Err(err(
                                loc,
                                format!("--checksum={c}: expected sha256:<64 hex digits>"),
                            ));
                        }
                        CopyInput::Url { url: p, checksum }
                    } else if p.contains("://") || p.starts_with("git@") {
                        return Err(err(
                            loc,
                            format!(
                                "{name} source `{p}`: only local paths{} are supported",
                                if copy.is_add { " and http(s) URLs" } else { "" }
                            ),
                        ));
                    } else {
                        CopyInput::Path(p)
                    }
                }
                CopySource::HereDoc {
                    name,
                    content,
                    expand,
                } => {
                    let content = if *expand {
                        self.expand_heredoc(loc, scope, content)?
                    } else {
                        content.clone()
                    };
                    CopyInput::Inline {
                        name: name.clone(),
                        content,
                    }
                }
            });
        }
        if copy.checksum.is_some() && !inputs.iter().any(|i| matches!(i, CopyInput::Url { .. })) {
            return Err(err(loc, "--checksum applies to URL sources only"));
        }
        let raw_dest = self.expand(loc, scope, &copy.dest)?;
        let workdir = scope
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".to_string());
        let dest = absolute(&workdir, &raw_dest);
        let dest_is_dir = raw_dest.ends_with('/') || raw_dest == "." || inputs.len() > 1;
        let chmod = copy
            .chmod
            .as_ref()
            .map(|m| {
                let m = self.expand(loc, scope, m)?;
                u32::from_str_radix(&m, 8)
                    .map_err(|_| err(loc, format!("--chmod={m} is not an octal mode")))
            })
            .transpose()?;
        let owner = copy
            .chown
            .as_ref()
            .map(|o| self.expand(loc, scope, o))
            .transpose()?;
        let exclude = copy
            .exclude
            .iter()
            .map(|e| self.expand(loc, scope, e))
            .collect::<Result<_, _>>()?;
        Ok(StepKind::Copy(CopyStep {
            is_add: copy.is_add,
            from,
            inputs,
            dest,
            dest_is_dir,
            owner,
            chmod,
            exclude,
        }))
    }

    /// Heredoc bodies expand `$VAR` but keep quotes, like a shell heredoc.
    fn expand_heredoc(
        &self,
        loc: &Location,
        scope: &Scope,
        content: &str,
    ) -> Result<String, PlanError> {
        let escaped = content
            .replace('\\', "\\\\")
            .replace('\'', "\\'")
            .replace('"', "\\\"");
        self.expand(loc, scope, &escaped)
    }
}

/// Exec form as is; shell form through the SHELL.
fn command_argv(cmd: &CommandLine, config: &RuntimeConfig) -> Vec<String> {
    match cmd {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut argv = config
                .shell
                .clone()
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            argv.push(s.clone());
            argv
        }
    }
}

/// `path` made absolute against `base` and cleaned, keeping a trailing `/`
/// meaningless (directories are decided elsewhere).
pub fn absolute(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    format!("/{}", crate::frontend::pattern::clean_path(&joined))
}

fn normalize_port(word: &str) -> Option<String> {
    let (port, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let valid = |p: &str| p.parse::<u16>().is_ok();
    let ok = match port.split_once('-') {
        Some((a, b)) => valid(a) && valid(b),
        None => valid(port),
    };
    ok.then(|| format!("{port}/{proto}"))
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-')
}

/// Go-style durations (`1h2m3.5s`, `500ms`) in nanoseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = tail;
    }
    Some(total as u64)
}
