//! Image families: `kiln.toml` with params, a matrix, and targets (bases,
//! images, artifacts, sources) whose Dockerfiles are templates.
//!
//! Pure: loading the file, expanding the matrix, rendering templates and
//! ordering the targets into a graph. Running the graph is `family`.

pub mod family;
pub mod schema;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use schema::ProjectFile;
use schema::{ArtifactDef, BaseDef, ImageDef, SourceDef};
pub use template::TemplateError;

pub type Params = BTreeMap<String, String>;

pub const PROJECT_FILE: &str = "kiln.toml";

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unknown param `{name}`; known params: {}", known.join(", "))]
    UnknownParam { name: String, known: Vec<String> },
    #[error("unknown target `{name}`; targets: {}", known.join(", "))]
    UnknownTarget { name: String, known: Vec<String> },
    #[error("`--set {0}`: expected NAME=VALUE")]
    BadSet(String),
    #[error("{0}")]
    Invalid(String),
    #[error("targets depend on each other in a cycle: {0}")]
    Cycle(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Base,
    Source,
    Image,
    Artifact,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Base => "base",
            Kind::Source => "source",
            Kind::Image => "image",
            Kind::Artifact => "artifact",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub path: PathBuf,
    pub file: ProjectFile,
    /// The `[data]` files, parsed.
    pub data: BTreeMap<String, serde_json::Value>,
}

/// One target with one set of params, ready to build.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub kind: Kind,
    pub params: Params,
    /// Project targets this one reads (FROM, COPY --from, RUN --mount from=).
    pub deps: Vec<String>,
    /// The rendered Dockerfile (images and artifacts).
    pub dockerfile: Option<RenderedDockerfile>,
}

#[derive(Debug, Clone)]
pub struct RenderedDockerfile {
    /// The template, relative to the project.
    pub template: String,
    pub text: String,
}

/// Line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

impl Project {
    /// Reads `DIR/kiln.toml`.
    pub fn load(dir: &Path) -> Result<Project, ProjectError> {
        let path = dir.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ProjectError::Read {
            path: path.clone(),
            source,
        })?;
        Project::parse(dir, &path, &text)
    }

    pub fn parse(dir: &Path, path: &Path, text: &str) -> Result<Project, ProjectError> {
        let file: ProjectFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ProjectError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let mut data = BTreeMap::new();
        for (name, file) in &file.data {
            let p = dir.join(file);
            let text = std::fs::read_to_string(&p).map_err(|source| ProjectError::Read {
                path: p.clone(),
                source,
            })?;
            let value = serde_json::from_str(&text).map_err(|e| ProjectError::Parse {
                path: p.clone(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
            data.insert(name.clone(), value);
        }
        let project = Project {
            dir: dir.to_path_buf(),
            path: path.to_path_buf(),
            file,
            data,
        };
        project.validate(text)?;
        Ok(project)
    }

    fn validate(&self, text: &str) -> Result<(), ProjectError> {
        let mut seen = BTreeSet::new();
        for (name, _) in self.targets() {
            if !seen.insert(name.clone()) {
                return Err(ProjectError::Invalid(format!(
                    "{}: target name `{name}` is used twice",
                    self.path.display()
                )));
            }
        }
        let at = |needle: &str| {
            let (l, c) = text.find(needle).map_or((1, 1), |o| line_col(text, o));
            format!("{}:{l}:{c}", self.path.display())
        };
        for (name, base) in &self.file.base {
            if base.suite.is_some() == base.rootfs.is_some() {
                return Err(ProjectError::Invalid(format!(
                    "{}: base `{name}` needs exactly one of `suite` or `rootfs`",
                    at(&format!("[base.{name}]"))
                )));
            }
        }
        for (name, source) in &self.file.source {
            if source.url.is_some() == source.path.is_some() {
                return Err(ProjectError::Invalid(format!(
                    "{}: source `{name}` needs exactly one of `url` or `path`",
                    at(&format!("[source.{name}]"))
                )));
            }
            if !source.sha256.contains("{{") && !is_sha256_hex(&source.sha256) {
                return Err(ProjectError::Invalid(format!(
                    "{}: source `{name}`: sha256 must be 64 hex digits",
                    at(&format!("[source.{name}]"))
                )));
            }
        }
        for key in self.file.matrix.keys() {
            if key != "exclude" && !self.file.params.contains_key(key) {
                return Err(ProjectError::Invalid(format!(
                    "{}: matrix param `{key}` is not in [params]",
                    at("[matrix]")
                )));
            }
        }
        Ok(())
    }

    /// Every target name with its kind.
    pub fn targets(&self) -> Vec<(String, Kind)> {
        let f = &self.file;
        let mut v: Vec<(String, Kind)> = f.base.keys().map(|k| (k.clone(), Kind::Base)).collect();
        v.extend(f.source.keys().map(|k| (k.clone(), Kind::Source)));
        v.extend(f.image.keys().map(|k| (k.clone(), Kind::Image)));
        v.extend(f.artifact.keys().map(|k| (k.clone(), Kind::Artifact)));
        v
    }

    pub fn kind_of(&self, name: &str) -> Option<Kind> {
        self.targets()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k)
    }

    /// What templates see: the params, the `[data]` files, and
    /// `apt_mirror`, the host's Debian mirror (never written in a project).
    pub fn template_context(&self, params: &Params) -> serde_json::Value {
        let mut ctx = serde_json::Map::new();
        if let Ok(m) = crate::bases::apt_sources::host_mirror() {
            ctx.insert("apt_mirror".into(), m.trim_end_matches('/').into());
        }
        for (k, v) in &self.data {
            ctx.insert(k.clone(), v.clone());
        }
        for (k, v) in params {
            ctx.insert(k.clone(), v.clone().into());
        }
        serde_json::Value::Object(ctx)
    }

    /// Renders a templated string from kiln.toml.
    pub fn render(&self, what: &str, text: &str, params: &Params) -> Result<String, TemplateError> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        template::render_str(what, text, &self.template_context(params))
    }

    pub fn defaults(&self) -> Params {
        self.file
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.text()))
            .collect()
    }

    /// The param sets to build: the defaults with `--set`s, or with
    /// `matrix`, every combination of `[matrix]` minus its excludes (a
    /// `--set` pins its param).
    pub fn param_sets(&self, sets: &[String], matrix: bool) -> Result<Vec<Params>, ProjectError> {
        let mut base = self.defaults();
        let known: Vec<String> = base.keys().cloned().collect();
        let mut pinned = BTreeSet::new();
        for s in sets {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| ProjectError::BadSet(s.clone()))?;
            if !base.contains_key(k) {
                return Err(ProjectError::UnknownParam {
                    name: k.to_string(),
                    known,
                });
            }
            base.insert(k.to_string(), v.to_string());
            pinned.insert(k.to_string());
        }
        if !matrix {
            return Ok(vec![base]);
        }
        let mut combos = vec![base];
        for (key, values) in &self.file.matrix {
            if key == "exclude" || pinned.contains(key) {
                continue;
            }
            let values = values
                .as_array()
                .ok_or_else(|| ProjectError::Invalid(format!("matrix `{key}` must be a list")))?;
            let values: Vec<String> = values.iter().map(toml_text).collect();
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(key.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        let excludes: Vec<BTreeMap<String, String>> = match self.file.matrix.get("exclude") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .ok_or_else(|| {
                    ProjectError::Invalid("matrix `exclude` must be a list of tables".into())
                })?
                .iter()
                .map(|t| {
                    t.as_table()
                        .map(|t| t.iter().map(|(k, v)| (k.clone(), toml_text(v))).collect())
                        .ok_or_else(|| {
                            ProjectError::Invalid("matrix `exclude` entries must be tables".into())
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        combos.retain(|c| {
            !excludes
                .iter()
                .any(|ex| ex.iter().all(|(k, v)| c.get(k) == Some(v)))
        });
        Ok(combos)
    }

    /// The targets `wanted` (all when empty) need, dependencies first, for
    /// one param set.
    pub fn graph(&self, params: &Params, wanted: &[String]) -> Result<Vec<Node>, ProjectError> {
        let names: Vec<String> = self.targets().into_iter().map(|(n, _)| n).collect();
        for w in wanted {
            if !names.contains(w) {
                return Err(ProjectError::UnknownTarget {
                    name: w.clone(),
                    known: names.clone(),
                });
            }
        }
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        for (name, kind) in self.targets() {
            let node = self.node(&name, kind, params, &names)?;
            nodes.insert(name, node);
        }
        let roots: Vec<String> = if wanted.is_empty() {
            names.clone()
        } else {
            wanted.to_vec()
        };
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        for r in &roots {
            visit(&nodes, r, &mut Vec::new(), &mut done, &mut order)?;
        }
        Ok(order.into_iter().map(|n| nodes[&n].clone()).collect())
    }

    fn node(
        &self,
        name: &str,
        kind: Kind,
        params: &Params,
        targets: &[String],
    ) -> Result<Node, ProjectError> {
        let template = match kind {
            Kind::Image => Some(&self.file.image[name].dockerfile),
            Kind::Artifact => Some(&self.file.artifact[name].dockerfile),
            _ => None,
        };
        let mut deps = Vec::new();
        let dockerfile = match template {
            None => None,
            Some(t) => {
                let text = template::render_file(&self.dir, t, &self.template_context(params))?;
                deps = references(&self.dir.join(t), &text, targets, name);
                Some(RenderedDockerfile {
                    template: t.clone(),
                    text,
                })
            }
        };
        Ok(Node {
            name: name.to_string(),
            kind,
            params: params.clone(),
            deps,
            dockerfile,
        })
    }

    pub fn image(&self, name: &str) -> &ImageDef {
        &self.file.image[name]
    }

    pub fn artifact(&self, name: &str) -> &ArtifactDef {
        &self.file.artifact[name]
    }

    pub fn base(&self, name: &str) -> &BaseDef {
        &self.file.base[name]
    }

    pub fn source(&self, name: &str) -> &SourceDef {
        &self.file.source[name]
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn visit(
    nodes: &BTreeMap<String, Node>,
    at: &str,
    stack: &mut Vec<String>,
    done: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) -> Result<(), ProjectError> {
    if done.contains(at) {
        return Ok(());
    }
    if let Some(i) = stack.iter().position(|s| s == at) {
        let mut cycle: Vec<String> = stack[i..].to_vec();
        cycle.push(at.to_string());
        return Err(ProjectError::Cycle(cycle.join(" -> ")));
    }
    stack.push(at.to_string());
    for dep in &nodes[at].deps {
        visit(nodes, dep, stack, done, order)?;
    }
    stack.pop();
    done.insert(at.to_string());
    order.push(at.to_string());
    Ok(())
}

/// Project targets a rendered Dockerfile names in FROM, `COPY --from` or
/// `RUN --mount from=`, other than its own stages. A Dockerfile that does
/// not parse names none here; its build reports the error.
fn references(path: &Path, text: &str, targets: &[String], own: &str) -> Vec<String> {
    let Ok(df) = crate::frontend::parse(path, text) else {
        return Vec::new();
    };
    let stage_names: BTreeSet<String> = df.stages.iter().filter_map(|s| s.name.clone()).collect();
    let mut found = BTreeSet::new();
    let mut consider = |name: &str| {
        if !stage_names.contains(name) && name != own && targets.iter().any(|t| t == name) {
            found.insert(name.to_string());
        }
    };
    for stage in &df.stages {
        consider(&stage.base);
        for inst in &stage.instructions {
            match &inst.value {
                crate::frontend::Instruction::Copy(c) => {
                    if let Some(f) = &c.from {
                        consider(f);
                    }
                }
                crate::frontend::Instruction::Run(r) => {
                    for m in &r.mounts {
                        if let Ok(crate::frontend::mount::MountSpec::Bind {
                            from: Some(f), ..
                        }) = crate::frontend::mount::parse_mount(m)
                        {
                            consider(&f);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests;
