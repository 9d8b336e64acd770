//! Base images without a registry: a rootfs tar (`kiln import`), a Debian
//! root made by mmdebstrap (`kiln bootstrap debian`), and downloads for
//! `ADD URL`.

pub mod apt_sources;

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;

use anyhow::bail;
use fn_error_context::context;

use crate::image::{Descriptor, History, ImageConfig};
use crate::layer::commit::Compression;
use crate::store::Store;

/// Makes a one-layer image from a root filesystem tar (any compression).
/// The archive is extracted through the confined unpacker first, so a
/// hostile archive fails here and the store gains nothing.
#[context("importing `{}` as `{name}`", tarball.display())]
pub fn import_rootfs(
    store: &Store,
    tarball: &Path,
    name: &str,
    comment: &str,
    cmd: &[&str],
) -> anyhow::Result<Descriptor> {
    let ws = store.tempdir()?;
    let dir = ws.path().join("rootfs");
    fs::create_dir(&dir)?;
    let file = fs::File::open(tarball)?;
    let root = crate::layer::confined::Root::open(&dir)?;
    let report = crate::layer::unpack::unpack(
        crate::layer::unpack::decompress(file)?,
        &root,
        &[],
        crate::layer::unpack::Flavor::Overlay,
    )?;
    if report.entries == 0 {
        bail!("`{}` holds no files", tarball.display());
    }
    let layer = crate::engine::commit_dir(store, &dir, Compression::Gzip)?;
    let mut config = ImageConfig::scratch();
    config.config.env = vec![format!("PATH={}", crate::plan::DEFAULT_PATH)];
    config.config.cmd = Some(cmd.iter().map(|s| s.to_string()).collect());
    let created = crate::image::rfc3339(crate::image::build_time());
    config.created = Some(created.clone());
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(History {
        created: Some(created),
        created_by: Some(comment.to_string()),
        comment: Some("kiln".into()),
        empty_layer: false,
    });
    store.commit_image(&config, &[layer], &[name.to_string()])
}

/// Options of `kiln bootstrap debian`.
#[derive(Debug, Clone)]
pub struct DebianOptions {
    pub suite: String,
    pub variant: String,
    pub components: Vec<String>,
    pub include: Vec<String>,
    /// The mirror URL; the host's apt sources when `None`.
    pub mirror: Option<String>,
    /// Extra mmdebstrap arguments (`--dpkgopt=…`, hooks).
    pub extra: Vec<String>,
}

/// Builds a Debian root with mmdebstrap and imports it.
#[context("bootstrapping Debian `{}` as `{name}`", opts.suite)]
pub fn bootstrap_debian(
    store: &Store,
    opts: &DebianOptions,
    name: &str,
) -> anyhow::Result<Descriptor> {
    let mirror = match &opts.mirror {
        Some(m) => m.clone(),
        None => apt_sources::host_mirror()?,
    };
    let ws = store.tempdir()?;
    let tarball = ws.path().join("rootfs.tar");
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--mode=root")
        .arg(format!("--variant={}", opts.variant))
        .arg("--format=tar")
        .arg(format!("--components={}", opts.components.join(",")));
    // Merged /usr made by mmdebstrap itself, as debian:* images are, rather
    // than by the usrmerge package, which drags perl into the image.
    let merged_usr = Path::new("/usr/share/mmdebstrap/hooks/maybe-merged-usr");
    if merged_usr.is_dir() {
        cmd.arg(format!("--hook-dir={}", merged_usr.display()));
    }
    if !opts.include.is_empty() {
        cmd.arg(format!("--include={}", opts.include.join(",")));
    }
    cmd.args(&opts.extra)
        .arg(&opts.suite)
        .arg(&tarball)
        .arg(&mirror);
    let status = cmd.status().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "mmdebstrap is not installed; install it with `apt-get install mmdebstrap`"
            )
        } else {
            anyhow::Error::new(e).context("starting mmdebstrap")
        }
    })?;
    if !status.success() {
        bail!("mmdebstrap failed ({status})");
    }
    let comment = format!(
        "mmdebstrap --variant={} {} {}",
        opts.variant, opts.suite, mirror
    );
    // Debian images run bash by default.
    import_rootfs(store, &tarball, name, &comment, &["bash"])
}

/// Downloads `url` to `dest`, verifying `checksum` (`sha256:…`) when
/// given. TLS trusts the host's CA bundle, so an intercepting proxy that the
/// host trusts works.
#[context("downloading `{url}`")]
pub fn download(url: &str, dest: &Path, checksum: Option<&str>) -> anyhow::Result<String> {
    let mut builder = ureq::Agent::config_builder();
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if bundle.exists() {
        let pem = fs::read(bundle)?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        builder = builder.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    let agent: ureq::Agent = builder.build().into();
    let response = agent.get(url).call()?;
    let mut reader = crate::digest::HashingReader::new(response.into_body().into_reader());
    let mut out = fs::File::create(dest)?;
    io::copy(&mut reader, &mut out)?;
    out.flush()?;
    let (digest, _) = reader.finish();
    if let Some(expected) = checksum
        && digest != expected
    {
        bail!("checksum mismatch: expected `{expected}`, got `{digest}`");
    }
    Ok(digest)
}
