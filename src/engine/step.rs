//! One RUN or COPY step: its cache key inputs, and its execution in the
//! sandbox followed by the layer commit.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use super::{BuildError, BuiltStage, Engine};
use crate::frontend::mount::{MountSpec, Sharing};
use crate::frontend::pattern::clean_path;
use crate::plan::{CopyInput, CopyStep, PlannedMount, RunStep, SourceRef, Step, StepKind};
use crate::sandbox::copy::{CopyItem, CopyPlan};
use crate::sandbox::mountpoints::{self, Kind};
use crate::sandbox::{self, Action, Mount, Process, SourceView, Spec};
use crate::store::{LayerRef, Store};

/// The host's CA bundle, and where RUN steps see it when `host-ca` is on.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const HOST_CA_TARGET: &str = "/run/kiln/ca-certificates.crt";

/// `.dockerignore` text: `<Dockerfile>.dockerignore` beside the Dockerfile
/// wins over the context's `.dockerignore`, as in BuildKit.
pub fn dockerignore(context: &Path, dockerfile: &Path) -> anyhow::Result<String> {
    let mut candidates = Vec::new();
    if let Some(name) = dockerfile.file_name() {
        let mut n = name.to_os_string();
        n.push(".dockerignore");
        candidates.push(dockerfile.with_file_name(n));
    }
    candidates.push(context.join(".dockerignore"));
    for c in candidates {
        match fs::read_to_string(&c) {
            Ok(text) => return Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading `{}`", c.display())),
        }
    }
    Ok(String::new())
}

/// The identity of what a `from` names: a built stage's key or an image's
/// manifest digest.
fn source_identity(engine: &Engine<'_>, from: &SourceRef) -> anyhow::Result<String> {
    Ok(source_stage(engine, from)?.map_or_else(|| "context".to_string(), |s| s.key))
}

/// What `--from` names, as a built stage; `None` for the context.
fn source_stage(engine: &Engine<'_>, from: &SourceRef) -> anyhow::Result<Option<BuiltStage>> {
    Ok(match from {
        SourceRef::Context => None,
        SourceRef::Stage(i) => Some(engine.built[i].clone()),
        SourceRef::Image(name) => Some(engine.image(name)?),
    })
}

/// Everything besides the parent that decides a step's result, as named
/// parts (so that `plan --explain` can say which one changed).
pub fn key_inputs(
    engine: &Engine<'_>,
    _parent: &BuiltStage,
    step: &Step,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut parts = Vec::new();
    match &step.kind {
        StepKind::Config => {}
        StepKind::Run(run) => {
            parts.push((
                "instruction".into(),
                serde_json::to_string(&(&run.argv, &run.user, &run.workdir, &run.network))?,
            ));
            for e in &run.env {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                parts.push((format!("env {k}"), v.to_string()));
            }
            for m in &run.mounts {
                parts.push((
                    format!("mount {}", m.spec.target()),
                    serde_json::to_string(&m.spec)?,
                ));
                if let MountSpec::Bind { source, .. } = &m.spec {
                    let digest = match &m.from {
                        SourceRef::Context => {
                            let mut h = Sha256::new();
                            let item = CopyItem::Tree {
                                root: engine.context().to_path_buf(),
                                pattern: source.clone(),
                                ignore: engine.ignore.clone(),
                                extract_archives: false,
                            };
                            crate::sandbox::copy::hash_item(&item, &mut h).with_context(|| {
                                format!("{}: bind mount source `{source}`", step.loc)
                            })?;
                            format!("sha256:{}", hex::encode(h.finalize()))
                        }
                        other => source_identity(engine, other)?,
                    };
                    parts.push((format!("mount {} content", m.spec.target()), digest));
                }
                // Secrets stay out of the key on purpose: a key is a file
                // name, and a hash of a short secret can be guessed.
            }
        }
        StepKind::Copy(copy) => {
            parts.push(("instruction".into(), serde_json::to_string(copy)?));
            parts.push(("from".into(), source_identity(engine, &copy.from)?));
            if copy.from == SourceRef::Context {
                for input in &copy.inputs {
                    if let CopyInput::Path(p) = input {
                        let mut h = Sha256::new();
                        let item = context_item(engine, copy, p);
                        crate::sandbox::copy::hash_item(&item, &mut h)
                            .with_context(|| format!("{}: COPY source `{p}`", step.loc))?;
                        parts.push((
                            format!("file {p}"),
                            format!("sha256:{}", hex::encode(h.finalize())),
                        ));
                    }
                }
            }
        }
    }
    Ok(parts)
}

fn context_item(engine: &Engine<'_>, copy: &CopyStep, pattern: &str) -> CopyItem {
    let mut ignore = engine.ignore.clone();
    for e in &copy.exclude {
        ignore.push('\n');
        ignore.push_str(e);
    }
    CopyItem::Tree {
        root: engine.context().to_path_buf(),
        pattern: pattern.to_string(),
        ignore,
        extract_archives: copy.is_add,
    }
}

/// Scratch space for one step, with the pieces a sandbox needs.
struct Workspace {
    dir: tempfile::TempDir,
    views: usize,
}

impl Workspace {
    fn new(store: &Store) -> anyhow::Result<Workspace> {
        let dir = store.tempdir()?;
        for d in ["upper", "work", "rootfs", "placeholder", "files"] {
            fs::create_dir(dir.path().join(d))?;
        }
        Ok(Workspace { dir, views: 0 })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A read-only view of some layers, mounted by the helper.
    fn view(
        &mut self,
        store: &Store,
        layers: &[LayerRef],
        views: &mut Vec<SourceView>,
    ) -> anyhow::Result<PathBuf> {
        self.views += 1;
        let at = self.path(&format!("view-{}", self.views));
        fs::create_dir(&at)?;
        let empty = self.path(&format!("view-{}-empty", self.views));
        fs::create_dir(&empty)?;
        let mut lowers = layer_dirs(store, layers)?;
        // overlayfs needs a lower even for an empty image.
        lowers.push(empty);
        views.push(SourceView {
            lowers,
            at: at.clone(),
        });
        Ok(at)
    }
}

/// Unpacked layer directories, top first.
fn layer_dirs(store: &Store, layers: &[LayerRef]) -> anyhow::Result<Vec<PathBuf>> {
    layers.iter().rev().map(|l| store.layer_dir(l)).collect()
}

fn layers_of(engine: &Engine<'_>, from: &SourceRef) -> anyhow::Result<Vec<LayerRef>> {
    Ok(source_stage(engine, from)?
        .map(|s| s.layers)
        .unwrap_or_default())
}

/// Runs a RUN or COPY step and commits its layer.
pub fn execute(
    engine: &Engine<'_>,
    parent: &BuiltStage,
    step: &Step,
    id: &str,
) -> anyhow::Result<LayerRef> {
    let store = engine.store;
    let mut ws = Workspace::new(store)?;
    let lowers = layer_dirs(store, &parent.layers)?;
    let placeholder = ws.path("placeholder");
    let mut all_lowers = vec![placeholder.clone()];
    all_lowers.extend(lowers.iter().cloned());
    let hostname = "kiln".to_string();
    let mut views = Vec::new();
    let mut mounts = Vec::new();
    for (path, kind) in [
        ("/proc", Kind::Dir),
        ("/sys", Kind::Dir),
        ("/dev", Kind::Dir),
    ] {
        mountpoints::ensure(&lowers, &placeholder, path, kind)?;
    }
    let (network, action, _locks) = match &step.kind {
        StepKind::Run(run) => {
            mounts.extend(network_mounts(&ws, &lowers, &hostname)?);
            let locks = run_mounts(engine, &mut ws, &lowers, run, &mut views, &mut mounts)?;
            let mut env = run.env.clone();
            env.extend(run.proxy_env.iter().cloned());
            if engine.opts.host_ca {
                // The bundle is mounted, never copied, and stays out of the
                // key like a proxy setting: it changes no step's result.
                let at = mountpoints::ensure(&lowers, &placeholder, HOST_CA_TARGET, Kind::File)?;
                mounts.push(Mount::Bind {
                    source: PathBuf::from(HOST_CA_BUNDLE),
                    target: at,
                    readonly: true,
                });
                for var in [
                    "SSL_CERT_FILE",
                    "PIP_CERT",
                    "REQUESTS_CA_BUNDLE",
                    "CURL_CA_BUNDLE",
                ] {
                    env.push(format!("{var}={HOST_CA_TARGET}"));
                }
            }
            let process = Process {
                argv: run.argv.clone(),
                env,
                user: run.user.clone(),
                workdir: run.workdir.clone(),
            };
            (run.network, Action::Run(process), locks)
        }
        StepKind::Copy(copy) => (
            sandbox::Network::Host,
            Action::Copy(copy_plan(engine, &mut ws, copy, &mut views)?),
            Vec::new(),
        ),
        StepKind::Config => bail!("config steps have no layer"),
    };
    let spec = Spec {
        rootfs: ws.path("rootfs"),
        lowers: all_lowers,
        upper: Some((ws.path("upper"), ws.path("work"))),
        source_views: views,
        mounts,
        network,
        hostname,
        action,
    };
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut on_line = |line: &str| {
        engine.progress.output(id, line);
        if tail.len() == 20 {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    };
    let code = sandbox::run(&spec, ws.dir.path(), sandbox::Stdio3::Lines(&mut on_line))?;
    if code != 0 {
        let tail: Vec<String> = tail.into_iter().map(|l| format!("  │ {l}")).collect();
        return Err(BuildError::StepFailed {
            loc: step.loc.clone(),
            instruction: step.created_by.lines().next().unwrap_or("").to_string(),
            code,
            tail: tail.join("\n"),
        }
        .into());
    }
    commit(store, &ws.path("upper"), engine.opts.compression)
}

/// The upper directory → blob in the store, and the directory itself
/// becomes the layer's unpacked copy.
pub fn commit(
    store: &Store,
    upper: &Path,
    compression: crate::layer::commit::Compression,
) -> anyhow::Result<LayerRef> {
    let tmp = store.tempfile()?;
    let file = tmp.reopen()?;
    let (_, written) =
        crate::layer::commit::write_layer(upper, file, compression).context("writing the layer")?;
    store.adopt_blob(tmp, &written.digest)?;
    let layer = LayerRef {
        diff_id: written.diff_id.clone(),
        blob: crate::image::Descriptor {
            media_type: written.media_type.to_string(),
            digest: written.digest,
            size: written.size,
            annotations: Default::default(),
            platform: None,
        },
    };
    let hex = crate::digest::sha256_hex(&layer.diff_id).expect("computed digest");
    store.adopt_dir(upper, &store.state_dir().join("layers").join(hex))?;
    Ok(layer)
}

/// Build mounts of a RUN step. Returns the locks of `sharing=locked` cache
/// mounts, held until the step ends.
fn run_mounts(
    engine: &Engine<'_>,
    ws: &mut Workspace,
    lowers: &[PathBuf],
    run: &RunStep,
    views: &mut Vec<SourceView>,
    mounts: &mut Vec<Mount>,
) -> anyhow::Result<Vec<fs::File>> {
    let store = engine.store;
    let placeholder = ws.path("placeholder");
    let mut locks = Vec::new();
    for (n, PlannedMount { spec, from }) in run.mounts.iter().enumerate() {
        match spec {
            MountSpec::Bind {
                target,
                source,
                readwrite,
                ..
            } => {
                let base = match from {
                    SourceRef::Context => engine.context().to_path_buf(),
                    other => {
                        let layers = layers_of(engine, other)?;
                        ws.view(store, &layers, views)?
                    }
                };
                let host = base.join(clean_path(source));
                let kind = if from == &SourceRef::Context && host.is_file() {
                    Kind::File
                } else {
                    Kind::Dir
                };
                if from == &SourceRef::Context && !host.exists() {
                    bail!("bind mount source `{source}` not found in the build context");
                }
                let at = mountpoints::ensure(lowers, &placeholder, target, kind)?;
                if *readwrite {
                    let upper = ws.path(&format!("bind-{n}-upper"));
                    let work = ws.path(&format!("bind-{n}-work"));
                    fs::create_dir(&upper)?;
                    fs::create_dir(&work)?;
                    mounts.push(Mount::Scratch {
                        source: host,
                        upper,
                        work,
                        target: at,
                    });
                } else {
                    mounts.push(Mount::Bind {
                        source: host,
                        target: at,
                        readonly: true,
                    });
                }
            }
            MountSpec::Cache {
                id,
                target,
                sharing,
                readonly,
                mode,
                uid,
                gid,
            } => {
                let hex = hex::encode(Sha256::digest(id.as_bytes()));
                let dir = store.state_dir().join("mounts").join(&hex);
                if !dir.exists() {
                    let fresh = ws.path(&format!("cache-{n}"));
                    fs::create_dir(&fresh)?;
                    fs::set_permissions(&fresh, fs::Permissions::from_mode(*mode))?;
                    std::os::unix::fs::chown(&fresh, Some(*uid), Some(*gid))?;
                    store.adopt_dir(&fresh, &dir)?;
                }
                let lock_path = store.state_dir().join("mounts").join(format!("{hex}.lock"));
                let lock = fs::File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)?;
                let source = match sharing {
                    Sharing::Shared => dir,
                    Sharing::Locked => {
                        lock.lock()?;
                        locks.push(lock);
                        dir
                    }
                    Sharing::Private => {
                        if lock.try_lock().is_ok() {
                            locks.push(lock);
                            dir
                        } else {
                            // Someone else has it: this step gets its own.
                            let own = ws.path(&format!("cache-{n}-private"));
                            fs::create_dir(&own)?;
                            own
                        }
                    }
                };
                let at = mountpoints::ensure(lowers, &placeholder, target, Kind::Dir)?;
                mounts.push(Mount::Bind {
                    source,
                    target: at,
                    readonly: *readonly,
                });
            }
            MountSpec::Tmpfs { target, size } => {
                let at = mountpoints::ensure(lowers, &placeholder, target, Kind::Dir)?;
                mounts.push(Mount::Tmpfs {
                    target: at,
                    size: *size,
                });
            }
            MountSpec::Secret {
                id,
                target,
                mode,
                uid,
                gid,
                ..
            } => {
                let Some(src) = engine.opts.secrets.get(id) else {
                    // Not required and not given: BuildKit skips the mount.
                    continue;
                };
                let copy = ws.path(&format!("files/secret-{n}"));
                fs::copy(src, &copy)
                    .with_context(|| format!("reading secret `{id}` from `{}`", src.display()))?;
                std::os::unix::fs::chown(&copy, Some(*uid), Some(*gid))?;
                fs::set_permissions(&copy, fs::Permissions::from_mode(*mode))?;
                let at = mountpoints::ensure(lowers, &placeholder, target, Kind::File)?;
                mounts.push(Mount::Bind {
                    source: copy,
                    target: at,
                    readonly: true,
                });
            }
        }
    }
    Ok(locks)
}

fn copy_plan(
    engine: &Engine<'_>,
    ws: &mut Workspace,
    copy: &CopyStep,
    views: &mut Vec<SourceView>,
) -> anyhow::Result<CopyPlan> {
    let store = engine.store;
    let mut items = Vec::new();
    let view = match &copy.from {
        SourceRef::Context => None,
        other => {
            let layers = layers_of(engine, other)?;
            Some(ws.view(store, &layers, views)?)
        }
    };
    for (n, input) in copy.inputs.iter().enumerate() {
        match input {
            CopyInput::Path(p) => match &view {
                None => items.push(context_item(engine, copy, p)),
                Some(root) => items.push(CopyItem::Tree {
                    root: root.clone(),
                    pattern: p.clone(),
                    ignore: copy.exclude.join("\n"),
                    extract_archives: copy.is_add,
                }),
            },
            CopyInput::Inline { name, content } => {
                let host = ws.path(&format!("files/inline-{n}"));
                fs::write(&host, content)?;
                items.push(CopyItem::File {
                    host,
                    name: name.clone(),
                    mode: 0o644,
                });
            }
            CopyInput::Url { url, checksum } => {
                let host = ws.path(&format!("files/download-{n}"));
                crate::bases::download(url, &host, checksum.as_deref())?;
                let name = url
                    .split(['?', '#'])
                    .next()
                    .unwrap_or(url)
                    .rsplit('/')
                    .next()
                    .unwrap_or("download");
                let name = if name.is_empty() { "download" } else { name };
                items.push(CopyItem::File {
                    host,
                    name: name.to_string(),
                    mode: 0o600,
                });
            }
        }
    }
    Ok(CopyPlan {
        items,
        dest: copy.dest.clone(),
        dest_is_dir: copy.dest_is_dir,
        owner: copy.owner.clone(),
        chmod: copy.chmod,
    })
}

/// `--output type=local`: the final stage's files, layers applied in order.
pub fn export_local(store: &Store, layers: &[LayerRef], dest: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("creating `{}`", dest.display()))?;
    let root = crate::layer::confined::Root::open(dest)?;
    for layer in layers {
        let blob = fs::File::open(store.blob_path(&layer.blob.digest)?)?;
        let reader = crate::layer::unpack::decompress(blob)?;
        crate::layer::unpack::unpack(reader, &root, &[], crate::layer::unpack::Flavor::Apply)
            .with_context(|| format!("applying layer `{}`", layer.diff_id))?;
    }
    Ok(())
}

/// Read-only copies of the host's `/etc/hosts` and `/etc/resolv.conf`
/// for a process, at mountpoints the image may lack.
fn network_mounts(
    ws: &Workspace,
    lowers: &[PathBuf],
    hostname: &str,
) -> anyhow::Result<Vec<Mount>> {
    let (hosts, resolv) = sandbox::network_files(&ws.path("files"), hostname)?;
    let mut mounts = Vec::new();
    for (file, target) in [(hosts, "/etc/hosts"), (resolv, "/etc/resolv.conf")] {
        let at = mountpoints::ensure(lowers, &ws.path("placeholder"), target, Kind::File)?;
        mounts.push(Mount::Bind {
            source: file,
            target: at,
            readonly: true,
        });
    }
    Ok(mounts)
}

/// Runs a process over `layers` with a throwaway upper directory.
pub fn run_ephemeral(
    store: &Store,
    layers: &[LayerRef],
    process: Process,
    network: sandbox::Network,
) -> anyhow::Result<i32> {
    let ws = Workspace::new(store)?;
    let lowers = layer_dirs(store, layers)?;
    let placeholder = ws.path("placeholder");
    let hostname = "kiln".to_string();
    for (path, kind) in [
        ("/proc", Kind::Dir),
        ("/sys", Kind::Dir),
        ("/dev", Kind::Dir),
    ] {
        mountpoints::ensure(&lowers, &placeholder, path, kind)?;
    }
    let mounts = network_mounts(&ws, &lowers, &hostname)?;
    let mut all = vec![placeholder];
    all.extend(lowers);
    let spec = Spec {
        rootfs: ws.path("rootfs"),
        lowers: all,
        upper: Some((ws.path("upper"), ws.path("work"))),
        source_views: Vec::new(),
        mounts,
        network,
        hostname,
        action: Action::Run(process),
    };
    sandbox::run(&spec, ws.dir.path(), sandbox::Stdio3::Inherit)
}
