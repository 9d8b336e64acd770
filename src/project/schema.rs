//! `kiln.toml`: the schema. Unknown keys are errors, reported with their
//! position.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A parameter value: TOML strings, integers and booleans all become text
/// for the templates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl ParamValue {
    pub fn text(&self) -> String {
        match self {
            ParamValue::Text(s) => s.clone(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
    /// Lists per param, plus `exclude = [{param = value, …}]`.
    #[serde(default)]
    pub matrix: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub build: BuildSettings,
    /// JSON files whose contents templates see under these names
    /// (`versions = "versions.json"` → `{{ versions["3.11.2"].sha256 }}`).
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub base: BTreeMap<String, BaseDef>,
    #[serde(default)]
    pub image: BTreeMap<String, ImageDef>,
    #[serde(default)]
    pub artifact: BTreeMap<String, ArtifactDef>,
    #[serde(default)]
    pub source: BTreeMap<String, SourceDef>,
}

/// Settings for every build of the project.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuildSettings {
    /// Mount the host's CA bundle into every RUN step (never into a
    /// layer) and point SSL_CERT_FILE, PIP_CERT and REQUESTS_CA_BUNDLE at it.
    #[serde(default)]
    pub host_ca: bool,
}

/// A base image: a Debian root from mmdebstrap, or a rootfs tar.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseDef {
    pub suite: Option<String>,
    #[serde(default = "default_variant")]
    pub variant: String,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    #[serde(default)]
    pub include: Vec<String>,
    /// Default: the host's apt sources.
    pub mirror: Option<String>,
    /// dpkg options for the bootstrap (`path-exclude=/usr/share/doc/*`).
    #[serde(default)]
    pub dpkgopt: Vec<String>,
    pub rootfs: Option<String>,
}

fn default_variant() -> String {
    "minbase".to_string()
}

fn default_components() -> Vec<String> {
    vec!["main".to_string()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDef {
    /// Dockerfile template, relative to the project.
    pub dockerfile: String,
    #[serde(default = "default_context")]
    pub context: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub target: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

fn default_context() -> String {
    ".".to_string()
}

/// The files of a stage: kept in the store (mountable with `from=NAME`)
/// and written to `output`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactDef {
    pub dockerfile: String,
    #[serde(default = "default_context")]
    pub context: String,
    pub target: Option<String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// Directory for the files, relative to the project; templated.
    pub output: Option<String>,
}

/// A file fetched once, verified, kept in the store, mountable at `/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    pub url: Option<String>,
    pub path: Option<String>,
    pub sha256: String,
    /// Name of the file in the mount; default: the URL's or path's last part.
    pub filename: Option<String>,
}
