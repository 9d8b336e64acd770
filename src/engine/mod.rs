//! The native engine: runs a [`BuildPlan`] stage by stage against the store.
//!
//! For each step it computes the cache key (parent key, the expanded step,
//! and the content digest of every input it reads), reuses the cached
//! layer on a hit, and otherwise runs the step in the sandbox and commits
//! its upper directory as a layer. The upper directory then becomes the
//! layer's unpacked directory by a rename: a fresh layer is never unpacked
//! again.

pub mod progress;
mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest as _, Sha256};

use crate::frontend::{Dockerfile, FrontendError, Location};
use crate::image::{History, ImageConfig, RuntimeConfig};
use crate::layer::commit::Compression;
use crate::plan::{self, Base, BuildArgs, BuildPlan, ImageConfigs, PlanError, StagePlan, StepKind};
use crate::store::{LayerRef, Store, StoreError};

pub use progress::{Progress, ProgressMode};
pub use step::{commit as commit_dir, export_local};

/// Build failures, split by who must act: the user's input (exit 2) or a
/// step that failed (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Input(String),
    #[error("{loc}: `{instruction}` failed with exit code {code}\n{tail}")]
    StepFailed {
        loc: Location,
        instruction: String,
        code: i32,
        tail: String,
    },
}

impl BuildError {
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::StepFailed { .. } => 1,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub enum Output {
    /// Store the image under these names.
    #[default]
    Image,
    /// Write the final stage's files to a directory instead.
    Local(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's path (read from disk unless `dockerfile_text` is
    /// given, then used in messages only).
    pub dockerfile: PathBuf,
    pub dockerfile_text: Option<String>,
    /// Names that FROM and `--from` resolve to other store names (a
    /// family's targets built with the same params).
    pub aliases: BTreeMap<String, String>,
    /// Labels set on the final image.
    pub labels: BTreeMap<String, String>,
    /// Mount the host's CA bundle into every RUN step (see `kiln.toml`).
    pub host_ca: bool,
    pub context: PathBuf,
    pub tags: Vec<String>,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, PathBuf>,
    pub no_cache: bool,
    pub output: Output,
    pub compression: Compression,
}

/// What a built stage is: its key, its layers and its config.
#[derive(Debug, Clone)]
pub struct BuiltStage {
    pub key: String,
    pub layers: Vec<LayerRef>,
    pub config: ImageConfig,
}

#[derive(Debug)]
pub struct BuildResult {
    pub manifest_digest: Option<String>,
    pub config: ImageConfig,
    pub steps_run: usize,
    pub steps_cached: usize,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StepStatus {
    Cached,
    Ran,
    WillRun,
}

/// One layer step of a build or a plan, with the parts of its key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    pub stage: String,
    pub index: usize,
    pub text: String,
    pub key: String,
    pub inputs: Vec<(String, String)>,
    pub status: StepStatus,
}

struct StoreConfigs<'s> {
    store: &'s Store,
    aliases: &'s BTreeMap<String, String>,
}

impl ImageConfigs for StoreConfigs<'_> {
    fn runtime_config(&self, name: &str) -> Result<RuntimeConfig, String> {
        let resolved = self.aliases.get(name).map_or(name, String::as_str);
        match self.store.resolve(resolved) {
            Ok(img) => Ok(img.config.config),
            Err(e) => Err(match e.downcast_ref::<StoreError>() {
                Some(StoreError::UnknownImage { .. }) => format!(
                    "image `{name}` is not in the store (kiln pulls from no registry)\n  hint: provide it with `kiln import ROOTFS.tar {name}` or `kiln bootstrap debian SUITE {name}`, or build it first"
                ),
                _ => format!("image `{name}`: {e:#}"),
            }),
        }
    }
}

/// Parses, plans and checks a build without running anything.
pub fn prepare(store: &Store, opts: &BuildOptions) -> Result<(Dockerfile, BuildPlan), BuildError> {
    let df = match &opts.dockerfile_text {
        Some(text) => crate::frontend::parse(&opts.dockerfile, text)?,
        None => Dockerfile::read(&opts.dockerfile)?,
    };
    for (id, path) in &opts.secrets {
        if !path.is_file() {
            return Err(BuildError::Input(format!(
                "secret `{id}`: file `{}` does not exist",
                path.display()
            )));
        }
    }
    if !opts.context.is_dir() {
        return Err(BuildError::Input(format!(
            "build context `{}` is not a directory",
            opts.context.display()
        )));
    }
    let args = BuildArgs {
        values: opts.build_args.clone(),
        secrets: opts.secrets.keys().cloned().collect(),
    };
    let plan = plan::plan(
        &df,
        &args,
        opts.target.as_deref(),
        &StoreConfigs {
            store,
            aliases: &opts.aliases,
        },
    )?;
    let ignore = step::dockerignore(&opts.context, &opts.dockerfile)
        .map_err(|e| BuildError::Input(format!("{e:#}")))?;
    // Missing COPY sources are input errors: find them before anything runs.
    for stage in &plan.stages {
        for s in &stage.steps {
            if let StepKind::Copy(copy) = &s.kind
                && copy.from == plan::SourceRef::Context
            {
                for input in &copy.inputs {
                    if let plan::CopyInput::Path(p) = input {
                        let rules = crate::frontend::pattern::IgnoreRules::parse(&ignore);
                        crate::sandbox::copy::select(&opts.context, p, &rules)
                            .map_err(|e| BuildError::Input(format!("{}: {e:#}", s.loc)))?;
                    }
                }
            }
        }
    }
    Ok((df, plan))
}

/// Runs a build. The store gains layers, cache entries and (for
/// [`Output::Image`]) the tagged image; a failed step adds nothing for
/// itself.
pub fn build(
    store: &Store,
    opts: &BuildOptions,
    progress: &Progress,
) -> anyhow::Result<BuildResult> {
    let (_df, plan) = prepare(store, opts)?;
    for unused in &plan.unused_args {
        progress.note(&format!(
            "warning: build argument `{unused}` was not consumed by any ARG"
        ));
    }
    let mut engine = Engine::run(store, opts, progress, &plan, false)?;
    let mut target = engine.built.remove(&plan.target).expect("target built");
    target.config.config.labels.extend(opts.labels.clone());
    let manifest_digest = match &opts.output {
        Output::Image => Some(
            store
                .commit_image(&target.config, &target.layers, &opts.tags)?
                .digest,
        ),
        Output::Local(dir) => {
            step::export_local(store, &target.layers, dir)?;
            None
        }
    };
    Ok(BuildResult {
        manifest_digest,
        config: target.config,
        steps_run: engine.steps_run,
        steps_cached: engine.steps_cached,
        steps: engine.records,
    })
}

/// What a build would do: every layer step's key and whether the cache
/// has it. Runs nothing and writes nothing.
pub fn explain(
    store: &Store,
    opts: &BuildOptions,
    progress: &Progress,
) -> anyhow::Result<Vec<StepRecord>> {
    let (_df, plan) = prepare(store, opts)?;
    let engine = Engine::run(store, opts, progress, &plan, true)?;
    Ok(engine.records)
}

struct Engine<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    progress: &'a Progress,
    ignore: String,
    built: BTreeMap<usize, BuiltStage>,
    steps_run: usize,
    steps_cached: usize,
    /// Plan only: compute keys and look them up, run nothing.
    dry_run: bool,
    records: Vec<StepRecord>,
}

impl<'a> Engine<'a> {
    /// Builds (or with `dry_run`, only keys and looks up) every planned
    /// stage in order.
    fn run(
        store: &'a Store,
        opts: &'a BuildOptions,
        progress: &'a Progress,
        plan: &BuildPlan,
        dry_run: bool,
    ) -> anyhow::Result<Engine<'a>> {
        let ignore = step::dockerignore(&opts.context, &opts.dockerfile)?;
        let mut engine = Engine {
            store,
            opts,
            progress,
            ignore,
            built: BTreeMap::new(),
            steps_run: 0,
            steps_cached: 0,
            dry_run,
            records: Vec::new(),
        };
        for stage in &plan.stages {
            let built = engine.build_stage(stage, plan)?;
            engine.built.insert(stage.index, built);
        }
        Ok(engine)
    }
}

fn key_of(parts: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    for (k, v) in parts {
        h.update(k.len().to_le_bytes());
        h.update(k);
        h.update(v.len().to_le_bytes());
        h.update(v);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

impl Engine<'_> {
    fn base(&self, stage: &StagePlan) -> anyhow::Result<BuiltStage> {
        Ok(match &stage.base {
            Base::Scratch => BuiltStage {
                key: key_of(&[("base".into(), "scratch".into())]),
                layers: Vec::new(),
                config: ImageConfig::scratch(),
            },
            Base::Stage(i) => self.built[i].clone(),
            Base::Image(name) => self.image(name)?,
        })
    }

    /// An image from the store as a built stage (its key is its manifest).
    fn image(&self, name: &str) -> anyhow::Result<BuiltStage> {
        let name = self.opts.aliases.get(name).map_or(name, String::as_str);
        let img = self.store.resolve(name)?;
        anyhow::ensure!(
            img.manifest.layers.len() == img.config.rootfs.diff_ids.len(),
            "image `{name}` has {} layers but {} diff_ids",
            img.manifest.layers.len(),
            img.config.rootfs.diff_ids.len()
        );
        let layers = img.layers();
        Ok(BuiltStage {
            key: img.manifest_descriptor.digest.clone(),
            layers,
            config: img.config,
        })
    }

    fn build_stage(&mut self, stage: &StagePlan, plan: &BuildPlan) -> anyhow::Result<BuiltStage> {
        let label = stage.display_name();
        let base_label = match &stage.base {
            Base::Scratch => "scratch".to_string(),
            Base::Stage(i) => plan.stage(*i).display_name(),
            Base::Image(n) => n.clone(),
        };
        self.progress.stage(&label, &base_label);
        let mut current = self.base(stage)?;
        let total = stage.steps.len();
        for (n, s) in stage.steps.iter().enumerate() {
            let id = format!("[{label} {}/{total}]", n + 1);
            let created_by = s.created_by.clone();
            match &s.kind {
                StepKind::Config => {
                    if !s.created_by.starts_with("ARG") {
                        current.config.history.push(History {
                            created: None,
                            created_by: Some(created_by),
                            comment: Some("kiln".into()),
                            empty_layer: true,
                        });
                    }
                    current.config.config = s.config.clone();
                    self.progress.config(&id, &s.created_by);
                }
                StepKind::Run(_) | StepKind::Copy(_) => {
                    let inputs = step::key_inputs(self, &current, s)?;
                    let mut parts = vec![("parent".to_string(), current.key.clone())];
                    parts.extend(inputs.iter().cloned());
                    let key = key_of(&parts);
                    let cached = if self.opts.no_cache {
                        None
                    } else {
                        self.store.cache_get(&key)?
                    };
                    let record = |status| StepRecord {
                        stage: label.clone(),
                        index: n,
                        text: s.created_by.clone(),
                        key: key.clone(),
                        inputs: parts.clone(),
                        status,
                    };
                    let entry = match cached {
                        Some(entry) => {
                            self.progress.cached(&id, &s.created_by);
                            self.steps_cached += 1;
                            self.records.push(record(StepStatus::Cached));
                            entry
                        }
                        None if self.dry_run => {
                            // Later keys depend on this key only, not on
                            // the layer, so planning goes on without it.
                            self.records.push(record(StepStatus::WillRun));
                            current.key = key;
                            continue;
                        }
                        None => {
                            self.records.push(record(StepStatus::Ran));
                            self.progress.start(&id, &s.created_by);
                            let started = Instant::now();
                            let layer = step::execute(self, &current, s, &id)?;
                            let entry = crate::store::CacheEntry {
                                layer,
                                history: History {
                                    created: Some(
                                        crate::image::rfc3339(crate::image::build_time()),
                                    ),
                                    created_by: Some(created_by),
                                    comment: Some("kiln".into()),
                                    empty_layer: false,
                                },
                                inputs: parts.clone(),
                            };
                            self.store.cache_put(&key, &entry)?;
                            self.progress.done(&id, &s.created_by, started.elapsed());
                            self.steps_run += 1;
                            entry
                        }
                    };
                    current.key = key;
                    current
                        .config
                        .rootfs
                        .diff_ids
                        .push(entry.layer.diff_id.clone());
                    current.layers.push(entry.layer);
                    current.config.history.push(entry.history);
                    current.config.config = s.config.clone();
                }
            }
        }
        current.config.config = stage.config.clone();
        current.config.created = current
            .config
            .history
            .iter()
            .filter_map(|h| h.created.clone())
            .max();
        if current.config.created.is_none() {
            current.config.created = Some(crate::image::rfc3339(
                crate::image::source_date_epoch().unwrap_or(0),
            ));
        }
        Ok(current)
    }

    fn context(&self) -> &Path {
        &self.opts.context
    }
}

/// Writes an exit-code-carrying error for the CLI.
pub fn failure_exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(b) = cause.downcast_ref::<BuildError>() {
            return b.exit_code();
        }
        if cause
            .downcast_ref::<StoreError>()
            .is_some_and(|e| matches!(e, StoreError::UnknownImage { .. }))
        {
            return 2;
        }
    }
    1
}

/// `kiln run`: a command in an image, in the same sandbox as RUN, with the
/// image's environment, user and working directory. Changes are discarded.
pub fn run_image(
    store: &Store,
    name: &str,
    command: &[String],
    network: crate::frontend::Network,
) -> anyhow::Result<i32> {
    let img = store.resolve(name)?;
    let c = &img.config.config;
    let mut argv = c.entrypoint.clone().unwrap_or_default();
    if command.is_empty() {
        argv.extend(c.cmd.clone().unwrap_or_default());
    } else {
        argv.extend(command.iter().cloned());
    }
    if argv.is_empty() {
        anyhow::bail!("image `{name}` has no CMD or ENTRYPOINT; give a command after `--`");
    }
    let layers = img.layers();
    let mut env = c.env.clone();
    if c.env_get("PATH").is_none() {
        env.push(format!("PATH={}", plan::DEFAULT_PATH));
    }
    let process = crate::sandbox::Process {
        argv,
        env,
        user: c.user.clone().unwrap_or_else(|| "root".into()),
        workdir: c.working_dir.clone().unwrap_or_else(|| "/".into()),
    };
    step::run_ephemeral(store, &layers, process, network)
}
