//! Running a step: namespaces, overlayfs, build-only mounts, exec.
//!
//! The parent (`run`) writes a [`Spec`] and starts `kiln __sandbox SPEC`,
//! a fresh single-threaded process that can safely unshare and fork. That
//! helper (`helper::main`) enters new mount, pid, uts and ipc namespaces
//! (and a network namespace for `--network=none`), mounts
//!
//! ```text
//! rootfs/            overlay: lowerdir+ = placeholder, layer N … layer 1
//!                             upperdir  = the step's new layer
//! rootfs/dev         tmpfs with null zero full random urandom tty, pts, shm
//! rootfs/proc        proc of the new pid namespace
//! rootfs/sys         sysfs, read-only
//! rootfs/etc/hosts, rootfs/etc/resolv.conf   read-only binds of copies
//! rootfs/<target>    each RUN --mount (bind, cache, secret, tmpfs)
//! ```
//!
//! and then either runs the command as pid 1 of the new pid namespace after
//! `pivot_root`, or performs a COPY/ADD into the root. Everything mounted
//! lives in the helper's private mount namespace, so it disappears with the
//! helper, however it ends; the upper directory holds only what the step
//! wrote. Mountpoints that the image lacks come from a throwaway lower
//! directory (`mountpoints`), never from the upper one.

pub mod copy;
pub mod helper;
pub mod mountpoints;
pub mod users;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use crate::frontend::Network;

/// A read-only overlay of some layers, mounted at `at` before anything else;
/// COPY --from and RUN --mount from= read through these.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceView {
    pub lowers: Vec<PathBuf>,
    pub at: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Mount {
    /// `source` is a host path (possibly inside a [`SourceView`]).
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    /// A writable view of `source` whose writes land in `upper`, discarded.
    Scratch {
        source: PathBuf,
        upper: PathBuf,
        work: PathBuf,
        target: String,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
}

impl Mount {
    pub fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Scratch { target, .. }
            | Mount::Tmpfs { target, .. } => target,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    /// `USER` as written: name or id, optionally `:group`.
    pub user: String,
    pub workdir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Action {
    Run(Process),
    Copy(copy::CopyPlan),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub rootfs: PathBuf,
    /// Top first.
    pub lowers: Vec<PathBuf>,
    /// Upper and work directories; `None` mounts the root read-only.
    pub upper: Option<(PathBuf, PathBuf)>,
    pub source_views: Vec<SourceView>,
    pub mounts: Vec<Mount>,
    pub network: Network,
    pub hostname: String,
    pub action: Action,
}

/// How the helper's output reaches the user.
pub enum Stdio3<'a> {
    /// Lines are handed to the callback (builds).
    Lines(&'a mut dyn FnMut(&str)),
    /// The terminal is passed through (`kiln run`).
    Inherit,
}

/// Runs `spec` in a helper process and returns the command's exit code
/// (128 + signal for a signal, 125 for a sandbox setup failure).
pub fn run(spec: &Spec, scratch: &Path, output: Stdio3<'_>) -> anyhow::Result<i32> {
    let spec_path = scratch.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(spec)?)
        .with_context(|| format!("writing `{}`", spec_path.display()))?;
    // /proc/self/exe runs this very binary even if it was replaced on disk
    // while the build ran.
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(helper::SUBCOMMAND).arg(&spec_path);
    match output {
        Stdio3::Inherit => {
            let status = cmd.status().context("starting the sandbox helper")?;
            Ok(exit_code(status))
        }
        Stdio3::Lines(callback) => {
            let (reader, writer) = std::io::pipe().context("creating a pipe")?;
            cmd.stdin(Stdio::null())
                .stdout(writer.try_clone()?)
                .stderr(writer);
            let mut child = cmd.spawn().context("starting the sandbox helper")?;
            // Our copies of the write end must go, or EOF never comes.
            drop(cmd);
            let mut lines = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                if lines.read_until(b'\n', &mut buf)? == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&buf);
                callback(line.trim_end_matches(['\n', '\r']));
            }
            Ok(exit_code(child.wait()?))
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Copies of the host's `/etc/hosts` and `/etc/resolv.conf` for a step,
/// so that a step can neither see changes made later nor change the host's.
pub fn network_files(scratch: &Path, hostname: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let hosts = scratch.join("hosts");
    let resolv = scratch.join("resolv.conf");
    let mut hosts_text =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Ok(host) = std::fs::read_to_string("/etc/hosts") {
        for line in host
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.contains("localhost"))
        {
            hosts_text.push_str(line);
            hosts_text.push('\n');
        }
    }
    std::fs::write(&hosts, hosts_text)?;
    let resolv_text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // A loopback resolver is unreachable from a network namespace; keep it
    // for the host network, where it works.
    std::fs::write(&resolv, resolv_text)?;
    Ok((hosts, resolv))
}
