//! Building, planning and rendering a family: the target graph of every
//! param set, run in dependency order with independent targets in
//! parallel.
//!
//! Every target's result is an image in the store under
//! [`Node::store_name`] (sources and bases included), so FROM and
//! `--from` of another target are plain image references, resolved
//! through the build's aliases. Each finished build of a target leaves a
//! record (`kiln-v1/targets/<name>.json`: its params and step keys) that
//! `plan --explain` compares against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::{Kind, Node, Params, Project, ProjectError};
use crate::engine::{self, BuildOptions, Progress, StepRecord, StepStatus};
use crate::store::Store;

#[derive(Debug, Clone, Default)]
pub struct FamilyOptions {
    pub targets: Vec<String>,
    pub sets: Vec<String>,
    pub matrix: bool,
    pub jobs: usize,
    pub no_cache: bool,
}

/// One target of one param set, deduplicated across the matrix.
#[derive(Debug, Clone)]
pub struct Job {
    pub node: Node,
    pub store_name: String,
    pub tags: Vec<String>,
    /// Indexes of the jobs it needs.
    pub deps: Vec<usize>,
    /// Dependency target name → store name, for FROM and `--from`.
    pub aliases: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Outcome {
    pub job: Job,
    pub result: Result<String, String>,
}

/// The store name of a target's result: a hash of everything that
/// decides it once rendered (the Dockerfile text, args, labels, context,
/// the store names of its dependencies; a base's bootstrap options), so
/// that a param a target does not use leaves its name, and its cache,
/// alone. Sources are named by content, fetched once whatever the params.
fn store_name(
    project: &Project,
    node: &Node,
    aliases: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let params = &node.params;
    let what = format!("{} `{}`", node.kind.label(), node.name);
    let identity: serde_json::Value = match node.kind {
        Kind::Source => {
            let sha = source_sha(project, node)?;
            return Ok(format!("kiln-source/{}:{}", node.name, &sha[..16]));
        }
        Kind::Base => {
            let d = project.base(&node.name);
            let r =
                |v: &String| -> anyhow::Result<String> { Ok(project.render(&what, v, params)?) };
            serde_json::json!({
                "suite": d.suite.as_ref().map(r).transpose()?,
                "variant": r(&d.variant)?,
                "components": d.components,
                "include": d.include.iter().map(r).collect::<anyhow::Result<Vec<_>>>()?,
                "mirror": d.mirror.as_ref().map(r).transpose()?,
                "rootfs": d.rootfs.as_ref().map(r).transpose()?,
                "dpkgopt": d.dpkgopt,
            })
        }
        Kind::Image | Kind::Artifact => {
            let job = Job {
                node: node.clone(),
                store_name: String::new(),
                tags: Vec::new(),
                deps: Vec::new(),
                aliases: aliases.clone(),
            };
            let o = build_options(project, &job, false)?;
            serde_json::json!({
                "dockerfile": node.dockerfile.as_ref().map(|d| &d.text),
                "context": o.context,
                "target": o.target,
                "args": o.build_args,
                "labels": o.labels,
                "host_ca": o.host_ca,
                "deps": aliases,
            })
        }
    };
    let digest = crate::digest::sha256_of(&serde_json::to_vec(&(
        node.kind.label(),
        &node.name,
        identity,
    ))?);
    Ok(format!(
        "kiln-{}/{}:{}",
        node.kind.label(),
        node.name,
        &digest[7..23]
    ))
}

/// A source's sha256 (hex, lowercase), rendered and checked.
fn source_sha(project: &Project, node: &Node) -> anyhow::Result<String> {
    let what = format!("source `{}`", node.name);
    let sha = project
        .render(&what, &project.source(&node.name).sha256, &node.params)?
        .to_ascii_lowercase();
    if !super::is_sha256_hex(&sha) {
        return Err(
            ProjectError::Invalid(format!("{what}: sha256 `{sha}` is not 64 hex digits")).into(),
        );
    }
    Ok(sha)
}

/// Expands params and graphs into jobs; every input error surfaces here,
/// before anything is built.
pub fn jobs(project: &Project, opts: &FamilyOptions) -> anyhow::Result<Vec<Job>> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for params in project.param_sets(&opts.sets, opts.matrix)? {
        let nodes = project.graph(&params, &opts.targets)?;
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for node in nodes {
            let aliases: BTreeMap<String, String> = node
                .deps
                .iter()
                .map(|d| (d.clone(), names[d].clone()))
                .collect();
            let name = store_name(project, &node, &aliases)?;
            names.insert(node.name.clone(), name.clone());
            if index.contains_key(&name) {
                continue;
            }
            if let Some(d) = &node.dockerfile {
                crate::frontend::parse(&project.dir.join(&d.template), &d.text).map_err(|e| {
                    ProjectError::Invalid(format!("{e} (rendered from {})", d.template))
                })?;
            }
            let tags = match node.kind {
                Kind::Image => project
                    .image(&node.name)
                    .tags
                    .iter()
                    .map(|t| project.render(&format!("tags of image `{}`", node.name), t, &params))
                    .collect::<Result<_, _>>()?,
                _ => Vec::new(),
            };
            let deps = node.deps.iter().map(|d| index[&names[d]]).collect();
            index.insert(name.clone(), jobs.len());
            jobs.push(Job {
                node,
                store_name: name,
                tags,
                deps,
                aliases,
            });
        }
    }
    Ok(jobs)
}

/// Builds every job, `jobs` at a time; a failure stops its dependents
/// while the others go on.
pub fn build(
    store: &Store,
    project: &Project,
    opts: &FamilyOptions,
    progress: &Progress,
) -> anyhow::Result<Vec<Outcome>> {
    let all = jobs(project, opts)?;
    check_bases(store, project, &all)?;
    let width = opts.jobs.max(1);
    let mut results: Vec<Option<Result<String, String>>> = vec![None; all.len()];
    let mut started = vec![false; all.len()];
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Result<String, String>)>();
        let mut running = 0;
        loop {
            for i in 0..all.len() {
                if started[i] || running >= width {
                    continue;
                }
                if let Some(failed) = all[i]
                    .deps
                    .iter()
                    .find(|d| matches!(results[**d], Some(Err(_))))
                {
                    started[i] = true;
                    results[i] = Some(Err(format!(
                        "not built: `{}` failed",
                        all[*failed].node.name
                    )));
                    continue;
                }
                if all[i]
                    .deps
                    .iter()
                    .all(|d| matches!(results[*d], Some(Ok(_))))
                {
                    started[i] = true;
                    running += 1;
                    let tx = tx.clone();
                    let job = &all[i];
                    let progress = progress.with_prefix(&format!("[{}]", job.node.name));
                    scope.spawn(move || {
                        let r = build_job(store, project, job, opts, &progress)
                            .map_err(|e| format!("{e:#}"));
                        let _ = tx.send((i, r));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let (i, r) = rx.recv().expect("a worker reports");
            running -= 1;
            results[i] = Some(r);
        }
    });
    Ok(all
        .into_iter()
        .zip(results)
        .map(|(job, r)| Outcome {
            job,
            result: r.unwrap_or_else(|| Err("not built".into())),
        })
        .collect())
}

/// Every FROM must name a stage, a project target, `scratch` or an image
/// already in the store: checked for all targets before any is built.
fn check_bases(store: &Store, project: &Project, all: &[Job]) -> anyhow::Result<()> {
    for job in all {
        let Some(d) = &job.node.dockerfile else {
            continue;
        };
        let df = crate::frontend::parse(&project.dir.join(&d.template), &d.text)?;
        let stages: Vec<String> = df.stages.iter().filter_map(|s| s.name.clone()).collect();
        for stage in &df.stages {
            let base = &stage.base;
            let known = base.contains('$')
                || base.eq_ignore_ascii_case("scratch")
                || stages.contains(&base.to_ascii_lowercase())
                || job.aliases.contains_key(base)
                || store.resolve(base).is_ok();
            if !known {
                return Err(ProjectError::Invalid(format!(
                    "{}: FROM `{base}` names no stage, no target of {} and no image in the store (rendered from {})",
                    stage.loc,
                    project.path.display(),
                    d.template
                ))
                .into());
            }
        }
    }
    Ok(())
}

fn build_job(
    store: &Store,
    project: &Project,
    job: &Job,
    opts: &FamilyOptions,
    progress: &Progress,
) -> anyhow::Result<String> {
    let node = &job.node;
    let params = &node.params;
    if matches!(node.kind, Kind::Base | Kind::Source)
        && let Ok(img) = store.resolve(&job.store_name)
    {
        progress.note(&format!("{} {} present", node.kind.label(), job.store_name));
        return Ok(img.manifest_descriptor.digest);
    }
    match node.kind {
        Kind::Base => {
            let def = project.base(&node.name);
            let what = format!("base `{}`", node.name);
            let desc = match (&def.suite, &def.rootfs) {
                (Some(suite), _) => {
                    let opts = crate::bases::DebianOptions {
                        suite: project.render(&what, suite, params)?,
                        variant: project.render(&what, &def.variant, params)?,
                        components: def.components.clone(),
                        include: def
                            .include
                            .iter()
                            .map(|i| project.render(&what, i, params))
                            .collect::<Result<_, _>>()?,
                        mirror: def
                            .mirror
                            .as_ref()
                            .map(|m| project.render(&what, m, params))
                            .transpose()?,
                        extra: def
                            .dpkgopt
                            .iter()
                            .map(|o| format!("--dpkgopt={o}"))
                            .collect(),
                    };
                    crate::bases::bootstrap_debian(store, &opts, &job.store_name)?
                }
                (None, Some(rootfs)) => {
                    let path = project.dir.join(project.render(&what, rootfs, params)?);
                    crate::bases::import_rootfs(
                        store,
                        &path,
                        &job.store_name,
                        &format!("kiln import {}", path.display()),
                        &["/bin/sh"],
                    )?
                }
                (None, None) => bail!("{what} has neither suite nor rootfs"),
            };
            Ok(desc.digest)
        }
        Kind::Source => fetch_source(store, project, node, &job.store_name, progress),
        Kind::Image | Kind::Artifact => {
            let opts = build_options(project, job, opts.no_cache)?;
            let result = engine::build(store, &opts, progress)?;
            record(store, &node.name, params, &result.steps)?;
            if node.kind == Kind::Artifact {
                let def = project.artifact(&node.name);
                let out = match &def.output {
                    Some(o) => {
                        project.render(&format!("output of artifact `{}`", node.name), o, params)?
                    }
                    None => format!("out/{}", node.name),
                };
                write_files(store, &job.store_name, &project.dir.join(out))?;
            }
            Ok(result.manifest_digest.unwrap_or_default())
        }
    }
}

fn build_options(project: &Project, job: &Job, no_cache: bool) -> anyhow::Result<BuildOptions> {
    let node = &job.node;
    let params = &node.params;
    let (template, context, target, args, labels) = match node.kind {
        Kind::Image => {
            let d = project.image(&node.name);
            (
                &d.dockerfile,
                &d.context,
                &d.target,
                &d.args,
                d.labels.clone(),
            )
        }
        Kind::Artifact => {
            let d = project.artifact(&node.name);
            (
                &d.dockerfile,
                &d.context,
                &d.target,
                &d.args,
                BTreeMap::new(),
            )
        }
        _ => bail!("`{}` is not built from a Dockerfile", node.name),
    };
    let what = format!("{} `{}`", node.kind.label(), node.name);
    let mut tags = vec![job.store_name.clone()];
    tags.extend(job.tags.iter().cloned());
    Ok(BuildOptions {
        dockerfile: project.dir.join(template),
        dockerfile_text: node.dockerfile.as_ref().map(|d| d.text.clone()),
        context: project.dir.join(project.render(&what, context, params)?),
        tags,
        target: target
            .as_ref()
            .map(|t| project.render(&what, t, params))
            .transpose()?,
        build_args: args
            .iter()
            .map(|(k, v)| Ok((k.clone(), project.render(&what, v, params)?)))
            .collect::<anyhow::Result<_>>()?,
        aliases: job.aliases.clone(),
        labels: labels
            .iter()
            .map(|(k, v)| Ok((k.clone(), project.render(&what, v, params)?)))
            .collect::<anyhow::Result<_>>()?,
        host_ca: project.file.build.host_ca,
        no_cache,
        ..BuildOptions::default()
    })
}

/// A source, fetched (or copied), verified and kept as a one-layer image
/// holding just the file; a mismatch stores nothing.
fn fetch_source(
    store: &Store,
    project: &Project,
    node: &Node,
    name: &str,
    progress: &Progress,
) -> anyhow::Result<String> {
    let def = project.source(&node.name);
    let what = format!("source `{}`", node.name);
    let expected = format!("sha256:{}", source_sha(project, node)?);
    let ws = store.tempdir()?;
    let dir = ws.path().join("files");
    std::fs::create_dir(&dir)?;
    let (location, digest) = match (&def.url, &def.path) {
        (Some(url), _) => {
            let url = project.render(&what, url, &node.params)?;
            let file = def
                .filename
                .clone()
                .unwrap_or_else(|| url.rsplit('/').next().unwrap_or("source").to_string());
            progress.note(&format!("fetching {url}"));
            let got = crate::bases::download(&url, &dir.join(&file), None)?;
            (url, got)
        }
        (None, Some(path)) => {
            let path = project.dir.join(project.render(&what, path, &node.params)?);
            let file = def.filename.clone().unwrap_or_else(|| {
                path.file_name()
                    .map_or("source".into(), |f| f.to_string_lossy().into_owned())
            });
            std::fs::copy(&path, dir.join(&file))
                .with_context(|| format!("{what}: reading `{}`", path.display()))?;
            let got = crate::digest::sha256_of(&std::fs::read(dir.join(&file))?);
            (path.display().to_string(), got)
        }
        (None, None) => bail!("{what} has neither url nor path"),
    };
    if digest != expected {
        bail!(
            "{what}: `{location}` has {digest}, but kiln.toml says {expected}; nothing was stored"
        );
    }
    let layer = crate::engine::commit_dir(store, &dir, crate::layer::commit::Compression::Gzip)?;
    let mut config = crate::image::ImageConfig::scratch();
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(crate::image::History {
        created_by: Some(format!("kiln source {location}")),
        ..Default::default()
    });
    Ok(store
        .commit_image(&config, &[layer], &[name.to_string()])?
        .digest)
}

/// An artifact's files, written next to `dest` and renamed into place.
/// Skipped when `dest` already holds this very image's files (the store
/// remembers which manifest it last wrote where).
fn write_files(store: &Store, image: &str, dest: &Path) -> anyhow::Result<()> {
    let img = store.resolve(image)?;
    let layers = img.layers();
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let marker = store.state_dir().join("outputs").join(
        crate::digest::sha256_of(
            std::fs::canonicalize(parent)?
                .join(dest.file_name().unwrap_or_default())
                .as_os_str()
                .as_encoded_bytes(),
        )
        .trim_start_matches("sha256:"),
    );
    let digest = img.manifest_descriptor.digest.clone();
    if dest.is_dir() && std::fs::read_to_string(&marker).is_ok_and(|m| m == digest) {
        return Ok(());
    }
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-out-")
        .tempdir_in(parent)?;
    engine::export_local(store, &layers, tmp.path())?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("replacing `{}`", dest.display()))?;
    }
    std::fs::rename(tmp.keep(), dest).with_context(|| format!("writing `{}`", dest.display()))?;
    std::fs::create_dir_all(marker.parent().expect("outputs dir"))?;
    store.write_atomic(&marker, digest.as_bytes())?;
    Ok(())
}

/// What the last build of a target saw.
#[derive(Debug, Serialize, Deserialize)]
struct TargetRecord {
    params: Params,
    steps: Vec<StepRecord>,
}

fn record_path(store: &Store, name: &str) -> PathBuf {
    store.state_dir().join("targets").join(format!(
        "{}.json",
        crate::digest::sha256_of(name.as_bytes()).trim_start_matches("sha256:")
    ))
}

fn record(store: &Store, name: &str, params: &Params, steps: &[StepRecord]) -> anyhow::Result<()> {
    let path = record_path(store, name);
    std::fs::create_dir_all(path.parent().expect("records dir"))?;
    let bytes = serde_json::to_vec(&TargetRecord {
        params: params.clone(),
        steps: steps.to_vec(),
    })?;
    if std::fs::read(&path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    store.write_atomic(&path, &bytes)?;
    Ok(())
}

fn last_record(store: &Store, name: &str) -> Option<TargetRecord> {
    serde_json::from_slice(&std::fs::read(record_path(store, name)).ok()?).ok()
}

/// `kiln plan`: for every job, every step CACHED or WILL RUN, and with
/// `explain`, why.
pub fn plan(
    store: &Store,
    project: &Project,
    opts: &FamilyOptions,
    explain: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let all = jobs(project, opts)?;
    let quiet = Progress::new(engine::ProgressMode::Quiet);
    for job in &all {
        let node = &job.node;
        let params: Vec<String> = node
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            out,
            "{} {} ({})",
            node.kind.label(),
            node.name,
            params.join(" ")
        )?;
        match node.kind {
            Kind::Base | Kind::Source => {
                let present = store.resolve(&job.store_name).is_ok();
                writeln!(
                    out,
                    "  {}",
                    if present {
                        "CACHED"
                    } else {
                        "WILL RUN: not in the store"
                    }
                )?;
                continue;
            }
            Kind::Image | Kind::Artifact => {}
        }
        if let Some(missing) = job.aliases.iter().find(|(_, s)| store.resolve(s).is_err()) {
            writeln!(
                out,
                "  WILL RUN: needs `{}`, which is not built yet",
                missing.0
            )?;
            continue;
        }
        let last = last_record(store, &node.name);
        if explain && let Some(last) = &last {
            let changed: Vec<String> = node
                .params
                .iter()
                .filter(|(k, v)| last.params.get(*k) != Some(*v))
                .map(|(k, v)| {
                    format!(
                        "{k} {} → {v}",
                        last.params.get(k).map_or("(unset)", String::as_str)
                    )
                })
                .collect();
            if !changed.is_empty() {
                writeln!(
                    out,
                    "  params changed since the last build: {}",
                    changed.join(", ")
                )?;
            }
        }
        let steps = engine::explain(store, &build_options(project, job, opts.no_cache)?, &quiet)?;
        for step in &steps {
            let first = step.text.lines().next().unwrap_or("");
            match step.status {
                StepStatus::Cached => writeln!(out, "  CACHED    {first}")?,
                _ => {
                    writeln!(out, "  WILL RUN  {first}")?;
                    if explain {
                        for reason in why(step, last.as_ref()) {
                            writeln!(out, "            because {reason}")?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Which parts of a step's key differ from the last build of its target.
fn why(step: &StepRecord, last: Option<&TargetRecord>) -> Vec<String> {
    let Some(last) = last else {
        return vec!["this target was never built".into()];
    };
    let Some(before) = last
        .steps
        .iter()
        .find(|s| s.stage == step.stage && s.index == step.index)
    else {
        return vec!["the step is new".into()];
    };
    let old: BTreeMap<&str, &str> = before
        .inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let new: BTreeMap<&str, &str> = step
        .inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut reasons = Vec::new();
    for (k, v) in &new {
        match old.get(k) {
            None => reasons.push(format!("{k} is new (`{}`)", short(v))),
            Some(o) if o != v => reasons.push(match *k {
                "parent" => "an earlier step or the base changed".to_string(),
                k if k.starts_with("file ") || k.ends_with(" content") || k == "from" => {
                    format!("{k} changed")
                }
                k => {
                    let (o, v) = around_difference(o, v);
                    format!("{k} changed: `{o}` → `{v}`")
                }
            }),
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        reasons.push(format!("{k} was removed"));
    }
    if reasons.is_empty() {
        reasons.push(
            "its result is no longer in the cache (pruned, or built with --no-cache elsewhere)"
                .into(),
        );
    }
    reasons
}

/// The parts of two long strings around where they first differ.
fn around_difference(old: &str, new: &str) -> (String, String) {
    let o: Vec<char> = old.chars().collect();
    let n: Vec<char> = new.chars().collect();
    let common = o.iter().zip(&n).take_while(|(a, b)| a == b).count();
    let start = common.saturating_sub(24);
    let cut = |c: &[char]| {
        let end = (common + 40).min(c.len());
        let mut s: String = c[start.min(c.len())..end].iter().collect();
        if start > 0 {
            s.insert(0, '…');
        }
        if end < c.len() {
            s.push('…');
        }
        s
    };
    (cut(&o), cut(&n))
}

fn short(v: &str) -> String {
    let mut s: String = v.chars().take(80).collect();
    if v.chars().count() > 80 {
        s.push('…');
    }
    s
}

/// `kiln render`: plain Dockerfiles, a bake file wired with named build
/// contexts, and a script that builds the same family with buildah.
pub fn render_family(
    project: &Project,
    opts: &FamilyOptions,
    out: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let all = jobs(project, opts)?;
    let mut combos: Vec<Params> = Vec::new();
    for job in &all {
        if !combos.contains(&job.node.params) {
            combos.push(job.node.params.clone());
        }
    }
    let mut written = Vec::new();
    for params in &combos {
        let dir = if combos.len() == 1 {
            out.to_path_buf()
        } else {
            out.join(
                params
                    .iter()
                    .map(|(k, v)| format!("{k}-{v}"))
                    .collect::<Vec<_>>()
                    .join("_"),
            )
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
        let jobs: Vec<&Job> = all.iter().filter(|j| &j.node.params == params).collect();
        render_one(project, &jobs, &dir)?;
        written.push(dir);
    }
    Ok(written)
}

fn relative_to(from: &Path, to: &Path) -> String {
    let from = std::fs::canonicalize(from).unwrap_or_else(|_| from.to_path_buf());
    let to = std::fs::canonicalize(to).unwrap_or_else(|_| to.to_path_buf());
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.components().count() - common;
    let mut parts: Vec<String> = vec!["..".to_string(); ups];
    parts.extend(
        to.components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn render_one(project: &Project, jobs: &[&Job], dir: &Path) -> anyhow::Result<()> {
    let mut bake_targets = serde_json::Map::new();
    let mut script = String::from(
        "#!/bin/sh\n# Builds this family with buildah, in dependency order; each target is\n# tagged with its kiln name so that FROM and --mount from= find it.\nset -eu\ncd \"$(dirname \"$0\")\"\nBUILDAH=${BUILDAH:-buildah}\n",
    );
    for job in jobs {
        let node = &job.node;
        let name = &node.name;
        let params = &node.params;
        let what = format!("{} `{name}`", node.kind.label());
        let mut target = serde_json::Map::new();
        match node.kind {
            Kind::Base => {
                let def = project.base(name);
                script.push_str(&format!(
                    "if ! $BUILDAH inspect --type image {name} >/dev/null 2>&1; then\n"
                ));
                let tar = match (&def.suite, &def.rootfs) {
                    (Some(suite), _) => {
                        let suite = project.render(&what, suite, params)?;
                        let mirror = match &def.mirror {
                            Some(m) => project.render(&what, m, params)?,
                            None => "\"${MIRROR:?set MIRROR to a Debian mirror URL}\"".to_string(),
                        };
                        script.push_str(&format!(
                            "mmdebstrap --hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr --variant={} --components={} {}{}--format=tar {suite} {name}.rootfs.tar {mirror}\n",
                            def.variant,
                            def.components.join(","),
                            def.dpkgopt.iter().map(|o| format!("--dpkgopt={} ", shell_quote(o))).collect::<String>(),
                            if def.include.is_empty() { String::new() } else { format!("--include={} ", def.include.join(",")) }
                        ));
                        // Docker users start from the upstream image.
                        target.insert("context".into(), ".".into());
                        target.insert(
                            "dockerfile-inline".into(),
                            format!("FROM debian:{suite}\n").into(),
                        );
                        format!("{name}.rootfs.tar")
                    }
                    (None, Some(rootfs)) => {
                        let path = project.dir.join(project.render(&what, rootfs, params)?);
                        let rel = relative_to(dir, &path);
                        let parent = relative_to(dir, path.parent().unwrap_or(Path::new(".")));
                        let file = path
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        target.insert("context".into(), parent.into());
                        target.insert(
                            "dockerfile-inline".into(),
                            format!("FROM scratch\nADD {file} /\nCMD [\"/bin/sh\"]\n").into(),
                        );
                        rel
                    }
                    (None, None) => bail!("{what} has neither suite nor rootfs"),
                };
                script.push_str(&format!(
                    "c=$($BUILDAH from scratch)\n$BUILDAH add \"$c\" {} / >/dev/null\n$BUILDAH config --cmd /bin/sh \"$c\"\n$BUILDAH commit -q \"$c\" {name} >/dev/null\n$BUILDAH rm \"$c\" >/dev/null\nfi\n",
                    shell_quote(&tar)
                ));
            }
            Kind::Source => {
                let def = project.source(name);
                let text = match (&def.url, &def.path) {
                    (Some(url), _) => {
                        let url = project.render(&what, url, params)?;
                        let file = def.filename.clone().unwrap_or_else(|| {
                            url.rsplit('/').next().unwrap_or("source").to_string()
                        });
                        target.insert("context".into(), ".".into());
                        let sha = source_sha(project, node)?;
                        // buildah 1.28 lacks ADD --checksum: the script
                        // fetches and checks, then adds the file.
                        script.push_str(&format!(
                            "if ! $BUILDAH inspect --type image {name} >/dev/null 2>&1; then\ncurl -fsSL -o {name}.source {url_q}\necho '{sha}  {name}.source' | sha256sum -c --quiet\nmkdir -p {name}.dir && mv {name}.source {name}.dir/{file_q}\nc=$($BUILDAH from scratch)\n$BUILDAH copy \"$c\" {name}.dir/{file_q} /{file_q} >/dev/null\n$BUILDAH commit -q \"$c\" {name} >/dev/null\n$BUILDAH rm \"$c\" >/dev/null\nfi\n",
                            url_q = shell_quote(&url),
                            file_q = shell_quote(&file),
                        ));
                        format!("FROM scratch\nADD --checksum=sha256:{sha} {url} /{file}\n")
                    }
                    (None, Some(path)) => {
                        let path = project.dir.join(project.render(&what, path, params)?);
                        let file = path
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let named = def.filename.clone().unwrap_or_else(|| file.clone());
                        target.insert(
                            "context".into(),
                            relative_to(dir, path.parent().unwrap_or(Path::new("."))).into(),
                        );
                        format!("FROM scratch\nCOPY {file} /{named}\n")
                    }
                    (None, None) => bail!("{what} has neither url nor path"),
                };
                let file = format!("{name}.Dockerfile");
                std::fs::write(dir.join(&file), &text)?;
                target.insert("dockerfile".into(), file.clone().into());
                if def.url.is_none() {
                    let ctx = target["context"].as_str().unwrap_or(".").to_string();
                    script.push_str(&format!(
                        "$BUILDAH bud -q --layers -t {name} -f {file} {} >/dev/null\n",
                        shell_quote(&ctx)
                    ));
                }
            }
            Kind::Image | Kind::Artifact => {
                let opts = build_options(project, job, false)?;
                let file = format!("{name}.Dockerfile");
                std::fs::write(
                    dir.join(&file),
                    &node.dockerfile.as_ref().expect("rendered").text,
                )?;
                let ctx = relative_to(dir, &opts.context);
                target.insert("dockerfile".into(), file.clone().into());
                target.insert("context".into(), ctx.clone().into());
                let contexts: serde_json::Map<String, serde_json::Value> = node
                    .deps
                    .iter()
                    .map(|d| (d.clone(), format!("target:{d}").into()))
                    .collect();
                if !contexts.is_empty() {
                    target.insert("contexts".into(), contexts.into());
                }
                let mut tags = vec![name.clone()];
                tags.extend(job.tags.iter().cloned());
                target.insert("tags".into(), tags.clone().into());
                if !opts.build_args.is_empty() {
                    target.insert("args".into(), serde_json::to_value(&opts.build_args)?);
                }
                if !opts.labels.is_empty() {
                    target.insert("labels".into(), serde_json::to_value(&opts.labels)?);
                }
                if let Some(t) = &opts.target {
                    target.insert("target".into(), t.clone().into());
                }
                let mut cmd = format!("$BUILDAH bud -q --layers --isolation chroot -f {file}");
                for t in &tags {
                    cmd.push_str(&format!(" -t {}", shell_quote(t)));
                }
                for (k, v) in &opts.build_args {
                    cmd.push_str(&format!(
                        " --build-arg {}",
                        shell_quote(&format!("{k}={v}"))
                    ));
                }
                for (k, v) in &opts.labels {
                    cmd.push_str(&format!(" --label {}", shell_quote(&format!("{k}={v}"))));
                }
                if let Some(t) = &opts.target {
                    cmd.push_str(&format!(" --target {}", shell_quote(t)));
                }
                cmd.push_str(&format!(" {} >/dev/null\n", shell_quote(&ctx)));
                script.push_str(&cmd);
            }
        }
        bake_targets.insert(name.clone(), target.into());
    }
    let names: Vec<serde_json::Value> = jobs.iter().map(|j| j.node.name.clone().into()).collect();
    let bake =
        serde_json::json!({ "group": { "default": { "targets": names } }, "target": bake_targets });
    std::fs::write(
        dir.join("docker-bake.json"),
        serde_json::to_vec_pretty(&bake)?,
    )?;
    let script_path = dir.join("build-with-buildah.sh");
    std::fs::write(&script_path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(inputs: &[(&str, &str)]) -> StepRecord {
        StepRecord {
            stage: "s".into(),
            index: 0,
            text: "RUN x".into(),
            key: String::new(),
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            status: StepStatus::WillRun,
        }
    }

    #[test]
    fn explanations_name_what_changed() {
        let last = TargetRecord {
            params: Params::new(),
            steps: vec![step(&[
                ("parent", "p1"),
                ("env PYTHON", "3.11.2"),
                ("file src/", "d1"),
                ("env OLD", "x"),
            ])],
        };
        let now = step(&[
            ("parent", "p2"),
            ("env PYTHON", "3.13.5"),
            ("file src/", "d2"),
            ("env NEW", "y"),
        ]);
        let reasons = why(&now, Some(&last));
        assert!(
            reasons.contains(&"an earlier step or the base changed".to_string()),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"env PYTHON changed: `3.11.2` → `3.13.5`".to_string()),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"file src/ changed".to_string()),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"env NEW is new (`y`)".to_string()),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"env OLD was removed".to_string()),
            "{reasons:?}"
        );
        assert_eq!(why(&now, None), ["this target was never built"]);
        let same = step(&[
            ("parent", "p1"),
            ("env PYTHON", "3.11.2"),
            ("file src/", "d1"),
            ("env OLD", "x"),
        ]);
        assert!(why(&same, Some(&last))[0].contains("no longer in the cache"));
    }

    #[test]
    fn long_values_are_cut_around_the_difference() {
        let a = format!("{}plain{}", "x".repeat(100), "y".repeat(100));
        let b = format!("{}fancy{}", "x".repeat(100), "y".repeat(100));
        let (o, n) = around_difference(&a, &b);
        assert!(
            o.starts_with('…') && o.contains("plain") && o.ends_with('…'),
            "{o}"
        );
        assert!(n.contains("fancy"), "{n}");
        assert!(o.chars().count() < 70);
    }
}
