//! Build arguments and the global (pre-FROM) ARG scope.

use std::collections::{BTreeMap, BTreeSet};

use super::{PlanError, err};
use crate::frontend::Dockerfile;
use crate::frontend::expand::expand_word;

/// Docker's predefined proxy arguments: usable without an ARG, passed to
/// RUN, kept out of the cache key and history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// `--build-arg` values and the ids of the `--secret`s given.
#[derive(Debug, Clone, Default)]
pub struct BuildArgs {
    pub values: BTreeMap<String, String>,
    pub secrets: BTreeSet<String>,
}

/// The platform arguments BuildKit defines for every build.
fn platform_args() -> BTreeMap<String, String> {
    let arch = crate::image::host_architecture();
    let platform = format!("linux/{arch}");
    [
        ("TARGETPLATFORM", platform.as_str()),
        ("TARGETOS", "linux"),
        ("TARGETARCH", arch),
        ("TARGETVARIANT", ""),
        ("BUILDPLATFORM", platform.as_str()),
        ("BUILDOS", "linux"),
        ("BUILDARCH", arch),
        ("BUILDVARIANT", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Values of the ARGs declared before the first FROM, with build
/// arguments applied; each default may use the ones before it.
pub fn global_values(
    df: &Dockerfile,
    build_args: &BuildArgs,
) -> Result<BTreeMap<String, String>, PlanError> {
    let mut values = platform_args();
    for arg in &df.global_args {
        let d = &arg.value;
        let value = match (build_args.values.get(&d.name), &d.default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(default)) => Some(
                expand_word(default, &values, df.escape)
                    .map_err(|e| err(&arg.loc, e.to_string()))?,
            ),
            (None, None) => None,
        };
        if let Some(v) = value {
            values.insert(d.name.clone(), v);
        }
    }
    Ok(values)
}
