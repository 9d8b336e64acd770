//! Command line: clap structs and their dispatch. Every command opens the
//! store, does one thing, and maps errors to exit codes: 2 for bad input,
//! 1 for a failed step or anything else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use crate::engine::{self, BuildOptions, Output, Progress, ProgressMode};
use crate::export::Format;
use crate::layer::commit::Compression;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Daemonless builds of container image families"
)]
pub struct Cli {
    /// The store (an OCI image layout plus kiln's state).
    #[arg(long, global = true, env = "KILN_STORE")]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a Dockerfile into the store.
    Build(BuildArgs),
    /// List the images in the store.
    Images,
    /// Show an image's config and its layers.
    Inspect { name: String },
    /// Remove image names (blobs go at the next prune).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove what no image needs; with --all, the build cache too.
    Prune {
        #[arg(long)]
        all: bool,
    },
    /// Check every blob, image and cache entry.
    Fsck,
    /// Make a one-layer image from a root filesystem tar.
    Import { rootfs: PathBuf, name: String },
    /// Make a base image with a distribution bootstrapper.
    Bootstrap {
        #[command(subcommand)]
        distro: Bootstrap,
    },
    /// Write an image out of the store.
    Export {
        name: String,
        #[arg(long, value_enum, default_value = "oci")]
        format: Format,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Show what a family build would run, and with --explain, why.
    Plan {
        targets: Vec<String>,
        #[command(flatten)]
        family: FamilyArgs,
        #[arg(long)]
        explain: bool,
    },
    /// Write plain Dockerfiles, a bake file and a buildah script.
    Render {
        targets: Vec<String>,
        #[command(flatten)]
        family: FamilyArgs,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a command in an image, in the build sandbox.
    Run {
        name: String,
        #[arg(long, default_value = "host")]
        network: String,
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Bootstrap {
    /// Debian with mmdebstrap, from the host's apt mirror.
    Debian {
        suite: String,
        name: String,
        #[arg(long, default_value = "minbase")]
        variant: String,
        #[arg(long, value_delimiter = ',', default_value = "main")]
        components: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        include: Vec<String>,
        /// Mirror URL; default: the host's apt sources.
        #[arg(long)]
        mirror: Option<String>,
        /// Passed to mmdebstrap as is (repeatable).
        #[arg(long = "mmdebstrap-arg", allow_hyphen_values = true)]
        extra: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct FamilyArgs {
    /// The project folder holding kiln.toml (default: the current one).
    #[arg(short = 'C', long = "directory")]
    pub directory: Option<PathBuf>,
    /// Override a param (`--set python=3.13.5`), repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Every combination in [matrix].
    #[arg(long)]
    pub matrix: bool,
}

impl FamilyArgs {
    fn project(&self) -> anyhow::Result<crate::project::Project> {
        let dir = self.directory.clone().unwrap_or_else(|| PathBuf::from("."));
        crate::project::Project::load(&dir).map_err(|e| UsageError(e.to_string()).into())
    }

    fn options(
        &self,
        targets: Vec<String>,
        jobs: usize,
        no_cache: bool,
    ) -> crate::project::family::FamilyOptions {
        crate::project::family::FamilyOptions {
            targets,
            sets: self.sets.clone(),
            matrix: self.matrix,
            jobs,
            no_cache,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// With -f: the build context (one directory). Without -f, in a folder
    /// with kiln.toml: the targets to build (all when none).
    pub positional: Vec<String>,
    #[command(flatten)]
    pub family: FamilyArgs,
    /// Targets built at once (family builds).
    #[arg(short = 'j', long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    pub jobs: usize,
    /// Dockerfile; default: CONTEXT/Dockerfile.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name the image (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// `id=ID,src=PATH`: a file for RUN --mount=type=secret.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long)]
    pub no_cache: bool,
    /// `type=local,dest=DIR` writes the files instead of storing an image.
    #[arg(long)]
    pub output: Option<String>,
    #[arg(long, value_enum, default_value = "tty")]
    pub progress: ProgressMode,
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// Accepted for compatibility; kiln builds for the host platform.
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

/// A usage or input error: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn default_store() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")));
    data.unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join("kiln")
}

fn parse_kv(what: &str, text: &str) -> Result<(String, String), UsageError> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        // `--build-arg NAME` takes the value from the environment.
        None if what == "--build-arg" && !text.is_empty() => {
            Ok((text.to_string(), std::env::var(text).unwrap_or_default()))
        }
        _ => Err(UsageError(format!("{what} `{text}`: expected KEY=VALUE"))),
    }
}

fn parse_secret(text: &str) -> Result<(String, PathBuf), UsageError> {
    let mut id = None;
    let mut src = None;
    for field in text.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("type", "file")) => {}
            _ => {
                return Err(UsageError(format!(
                    "--secret `{text}`: expected id=ID,src=PATH"
                )));
            }
        }
    }
    match (id, src) {
        (Some(id), Some(src)) => Ok((id, src)),
        (Some(id), None) => Ok((id.clone(), PathBuf::from(id))),
        _ => Err(UsageError(format!(
            "--secret `{text}`: expected id=ID,src=PATH"
        ))),
    }
}

fn parse_output(text: &str) -> Result<Output, UsageError> {
    let mut kind = None;
    let mut dest = None;
    for field in text.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => {
                return Err(UsageError(format!(
                    "--output `{text}`: expected type=local,dest=DIR"
                )));
            }
        }
    }
    match (kind.as_deref(), dest) {
        (Some("local"), Some(d)) => Ok(Output::Local(d)),
        (Some("image") | None, None) => Ok(Output::Image),
        _ => Err(UsageError(format!(
            "--output `{text}`: only type=local,dest=DIR is supported"
        ))),
    }
}

/// Runs the CLI; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.chain().any(|c| c.downcast_ref::<UsageError>().is_some()) {
                2
            } else {
                engine::failure_exit_code(&e)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let store_path = cli.store.clone().unwrap_or_else(default_store);
    match cli.command {
        Command::Build(args) => build(&store_path, args),
        Command::Images => {
            let store = Store::open(&store_path)?;
            println!("{:<40} {:<20} {:>10}", "NAME", "MANIFEST", "SIZE");
            for (name, desc) in store.images()? {
                let size = store
                    .resolve(&name)
                    .map(|img| img.manifest.layers.iter().map(|l| l.size).sum::<u64>())
                    .unwrap_or(0);
                println!(
                    "{:<40} {:<20} {:>10}",
                    name,
                    &desc.digest[7..19],
                    human(size)
                );
            }
            Ok(())
        }
        Command::Inspect { name } => {
            let store = Store::open(&store_path)?;
            inspect(&store, &name)
        }
        Command::Rm { names } => {
            let store = Store::open(&store_path)?;
            for n in &names {
                if !store.untag(n)? {
                    return Err(UsageError(format!("no image `{n}` in the store")).into());
                }
                println!("untagged {n}");
            }
            Ok(())
        }
        Command::Prune { all } => {
            let store = Store::open(&store_path)?.exclusive()?;
            let r = store.prune(all)?;
            println!(
                "removed {} blobs ({}), {} unpacked layers, {} cache entries",
                r.blobs_removed,
                human(r.bytes_freed),
                r.layers_removed,
                r.cache_entries_removed
            );
            Ok(())
        }
        Command::Fsck => {
            let store = Store::open(&store_path)?;
            let report = store.fsck()?;
            for p in &report.problems {
                println!("problem: {p}");
            }
            if report.problems.is_empty() {
                println!("ok: {} blobs verified", report.blobs_checked);
                Ok(())
            } else {
                bail!("{} problems found", report.problems.len())
            }
        }
        Command::Import { rootfs, name } => {
            let store = Store::open(&store_path)?;
            if !rootfs.is_file() {
                return Err(UsageError(format!("`{}` is not a file", rootfs.display())).into());
            }
            let desc = crate::bases::import_rootfs(
                &store,
                &rootfs,
                &name,
                &format!("kiln import {}", rootfs.display()),
                &["/bin/sh"],
            )?;
            println!("{name} {}", desc.digest);
            Ok(())
        }
        Command::Bootstrap {
            distro:
                Bootstrap::Debian {
                    suite,
                    name,
                    variant,
                    components,
                    include,
                    mirror,
                    extra,
                },
        } => {
            let store = Store::open(&store_path)?;
            let opts = crate::bases::DebianOptions {
                suite,
                variant,
                components,
                include,
                mirror,
                extra,
            };
            let desc = crate::bases::bootstrap_debian(&store, &opts, &name)?;
            println!("{name} {}", desc.digest);
            Ok(())
        }
        Command::Export {
            name,
            format,
            output,
        } => {
            let store = Store::open(&store_path)?;
            crate::export::export(&store, &name, format, &output)
        }
        Command::Plan {
            targets,
            family,
            explain,
        } => {
            let project = family.project()?;
            let store = Store::open(&store_path)?;
            let opts = family.options(targets, 1, false);
            let mut out = std::io::stdout().lock();
            crate::project::family::plan(&store, &project, &opts, explain, &mut out)
                .map_err(input_error)
        }
        Command::Render {
            targets,
            family,
            output,
        } => {
            let project = family.project()?;
            let opts = family.options(targets, 1, false);
            for dir in crate::project::family::render_family(&project, &opts, &output)
                .map_err(input_error)?
            {
                println!("{}", dir.display());
            }
            Ok(())
        }
        Command::Run {
            name,
            network,
            command,
        } => {
            let store = Store::open(&store_path)?;
            let network = match network.as_str() {
                "host" | "default" => crate::frontend::Network::Host,
                "none" => crate::frontend::Network::None,
                other => {
                    return Err(UsageError(format!("--network={other}: use host or none")).into());
                }
            };
            let code = crate::engine::run_image(&store, &name, &command, network)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

/// Project errors (schema, params, templates, graph) are the user's input.
fn input_error(e: anyhow::Error) -> anyhow::Error {
    let is_input = e.chain().any(|c| {
        c.downcast_ref::<crate::project::ProjectError>().is_some()
            || c.downcast_ref::<crate::project::TemplateError>().is_some()
    });
    if is_input {
        UsageError(format!("{e:#}")).into()
    } else {
        e
    }
}

/// `kiln build` is a family build when no `-f` is given and a kiln.toml
/// is found (in `-C DIR` or here); otherwise a Dockerfile build.
fn build(store_path: &Path, args: BuildArgs) -> anyhow::Result<()> {
    let project_dir = args
        .family
        .directory
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let is_family = args.file.is_none()
        && project_dir.join(crate::project::PROJECT_FILE).is_file()
        && !(args.positional.len() == 1
            && Path::new(&args.positional[0]).join("Dockerfile").is_file());
    if is_family {
        return build_family(store_path, args);
    }
    let context = match args.positional.as_slice() {
        [one] => PathBuf::from(one),
        [] => {
            return Err(UsageError(
                "give a build context (or run in a folder with kiln.toml)".into(),
            )
            .into());
        }
        _ => {
            return Err(UsageError("a Dockerfile build takes one context directory".into()).into());
        }
    };
    dockerfile_build(store_path, args, context)
}

fn build_family(store_path: &Path, args: BuildArgs) -> anyhow::Result<()> {
    let project = args.family.project()?;
    let store = Store::open(store_path)?;
    let progress = Progress::new(args.progress);
    let opts = args
        .family
        .options(args.positional.clone(), args.jobs, args.no_cache);
    let started = std::time::Instant::now();
    let outcomes =
        crate::project::family::build(&store, &project, &opts, &progress).map_err(input_error)?;
    let mut failed = 0;
    println!("{:<10} {:<16} {:<40} RESULT", "KIND", "TARGET", "TAGS");
    for o in &outcomes {
        let params: Vec<String> = o
            .job
            .node
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let result = match &o.result {
            Ok(d) => d.clone(),
            Err(e) => {
                failed += 1;
                format!("FAILED: {}", e.lines().next().unwrap_or(""))
            }
        };
        println!(
            "{:<10} {:<16} {:<40} {result}",
            o.job.node.kind.label(),
            o.job.node.name,
            o.job.tags.join(",")
        );
        if args.family.matrix {
            println!("{:<10} {:<16} {}", "", "", params.join(" "));
        }
    }
    for o in &outcomes {
        if let Err(e) = &o.result
            && !e.starts_with("not built:")
        {
            eprintln!("error: {}: {e}", o.job.node.name);
        }
    }
    progress.note(&format!(
        "family built in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    if failed > 0 {
        bail!("{failed} of {} targets failed", outcomes.len());
    }
    Ok(())
}

fn dockerfile_build(store_path: &Path, args: BuildArgs, context: PathBuf) -> anyhow::Result<()> {
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        let (k, v) = parse_kv("--build-arg", a)?;
        build_args.insert(k, v);
    }
    let mut secrets = BTreeMap::new();
    for s in &args.secrets {
        let (id, src) = parse_secret(s)?;
        secrets.insert(id, src);
    }
    let output = match &args.output {
        Some(o) => parse_output(o)?,
        None => Output::Image,
    };
    if matches!(output, Output::Image) && args.tags.is_empty() {
        // Like docker build without -t: the image is kept, named by digest.
    }
    let dockerfile = args
        .file
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    let opts = BuildOptions {
        dockerfile,
        context: context.clone(),
        tags: args.tags.clone(),
        target: args.target.clone(),
        build_args,
        secrets,
        no_cache: args.no_cache,
        output,
        compression: match args.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        },
        ..BuildOptions::default()
    };
    let store = Store::open(store_path)?;
    let progress = Progress::new(args.progress);
    let started = std::time::Instant::now();
    let result = engine::build(&store, &opts, &progress)?;
    let took = started.elapsed().as_secs_f64();
    match &result.manifest_digest {
        Some(d) => {
            progress.note(&format!(
                "built {} in {took:.1}s ({} steps run, {} cached)",
                d, result.steps_run, result.steps_cached
            ));
            for t in &opts.tags {
                progress.note(&format!("tagged {}", crate::image::normalize_reference(t)));
            }
            println!("{d}");
        }
        None => progress.note(&format!(
            "wrote files in {took:.1}s ({} steps run, {} cached)",
            result.steps_run, result.steps_cached
        )),
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", units[u])
    }
}

fn inspect(store: &Store, name: &str) -> anyhow::Result<()> {
    let img = store.resolve(name)?;
    let mut layers = Vec::new();
    let mut li = 0;
    for h in &img.config.history {
        if h.empty_layer {
            continue;
        }
        let Some(layer) = img.manifest.layers.get(li) else {
            break;
        };
        let diff_id = img
            .config
            .rootfs
            .diff_ids
            .get(li)
            .cloned()
            .unwrap_or_default();
        let unpacked = crate::digest::sha256_hex(&diff_id)
            .map(|hex| dir_size(&store.state_dir().join("layers").join(hex)))
            .transpose()?
            .flatten();
        layers.push(serde_json::json!({
            "digest": layer.digest,
            "diff_id": diff_id,
            "size": layer.size,
            "unpacked_size": unpacked,
            "created_by": h.created_by,
        }));
        li += 1;
    }
    let total: u64 = img.manifest.layers.iter().map(|l| l.size).sum();
    let unpacked: u64 = layers
        .iter()
        .filter_map(|l| l["unpacked_size"].as_u64())
        .sum();
    let out = serde_json::json!({
        "name": img.name,
        "manifest": img.manifest_descriptor.digest,
        "config_digest": img.manifest.config.digest,
        "size": total,
        "unpacked_size": unpacked,
        "config": img.config,
        "layers": layers,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Bytes used by the files under `dir` (`None` if it is not unpacked).
fn dir_size(dir: &Path) -> anyhow::Result<Option<u64>> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut total = 0;
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.with_context(|| format!("walking `{}`", dir.display()))?;
        if e.file_type().is_file() {
            total += e.metadata()?.len();
        }
    }
    Ok(Some(total))
}
