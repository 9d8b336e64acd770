//! The sandbox helper process: `kiln __sandbox SPEC`.
//!
//! Runs single-threaded, so `unshare` and `fork` are safe here. Nothing in
//! this file runs in the main kiln process.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context as _, bail};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{self as rm, MountFlags};

use super::{Action, Mount, Network, Process, Spec};
use crate::layer::confined::Root;

pub const SUBCOMMAND: &str = "__sandbox";

/// Entry point; returns the process exit code.
pub fn main(spec_path: &Path) -> i32 {
    let result = std::fs::read(spec_path)
        .context("reading the sandbox spec")
        .and_then(|b| serde_json::from_slice::<Spec>(&b).context("parsing the sandbox spec"))
        .and_then(|spec| enter(&spec));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln sandbox: {e:#}");
            125
        }
    }
}

fn enter(spec: &Spec) -> anyhow::Result<i32> {
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWPID;
    if spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: plain syscall; this process is single-threaded.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(io::Error::last_os_error()).context("unshare (kiln needs root)");
    }
    rm::mount_change(
        "/",
        rm::MountPropagationFlags::REC | rm::MountPropagationFlags::PRIVATE,
    )
    .context("making / private")?;
    rustix::system::sethostname(spec.hostname.as_bytes()).context("sethostname")?;
    if spec.network == Network::None {
        bring_up_loopback()?;
    }
    for view in &spec.source_views {
        mount_overlay(&view.lowers, None, &view.at)?;
    }
    let upper = spec.upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
    mount_overlay(&spec.lowers, upper, &spec.rootfs)?;
    let root = Root::open(&spec.rootfs)?;
    mount_dev(&root)?;
    for m in &spec.mounts {
        mount_build_mount(&root, m).with_context(|| format!("mounting `{}`", m.target()))?;
    }
    match &spec.action {
        Action::Copy(plan) => {
            super::copy::execute(&root, plan)?;
            Ok(0)
        }
        Action::Run(process) => run_process(spec, process),
    }
}

/// `lo` is down in a new network namespace; a build step expects it up.
fn bring_up_loopback() -> anyhow::Result<()> {
    // SAFETY: socket/ioctl with a zeroed ifreq naming "lo".
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error()).context("socket for lo");
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        libc::close(sock);
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("bringing up lo");
        }
    }
    Ok(())
}

/// Mounts an overlay with the new mount API: one `lowerdir+` per layer, so
/// the number of layers is not bounded by a page of mount options.
pub fn mount_overlay(
    lowers: &[impl AsRef<Path>],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> anyhow::Result<()> {
    let fd = rustix::fs::open(
        target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening `{}`", target.display()))?;
    mount_overlay_at(lowers, upper, &fd)
        .with_context(|| format!("overlay on `{}`", target.display()))
}

/// Like [`mount_overlay`], onto an already opened directory.
fn mount_overlay_at(
    lowers: &[impl AsRef<Path>],
    upper: Option<(&Path, &Path)>,
    target: &impl AsFd,
) -> anyhow::Result<()> {
    let fs = rm::fsopen("overlay", rm::FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
    let configure = || -> io::Result<()> {
        for lower in lowers {
            rm::fsconfig_set_string(&fs, "lowerdir+", lower.as_ref())?;
        }
        if let Some((upper, work)) = upper {
            rm::fsconfig_set_string(&fs, "upperdir", upper)?;
            rm::fsconfig_set_string(&fs, "workdir", work)?;
        }
        // Layers must be plain trees that a tar can carry.
        rm::fsconfig_set_string(&fs, "redirect_dir", "off")?;
        rm::fsconfig_set_string(&fs, "index", "off")?;
        rm::fsconfig_set_string(&fs, "metacopy", "off")?;
        rm::fsconfig_create(&fs)?;
        Ok(())
    };
    if let Err(e) = configure() {
        bail!("{e}{}", fs_log(&fs));
    }
    let attrs = if upper.is_none() {
        rm::MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        rm::MountAttrFlags::empty()
    };
    let mnt =
        rm::fsmount(&fs, rm::FsMountFlags::FSMOUNT_CLOEXEC, attrs).context("fsmount overlay")?;
    rm::move_mount(
        &mnt,
        "",
        target,
        "",
        rm::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | rm::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .context("attaching the overlay")?;
    Ok(())
}

/// The kernel's messages about a failed fsconfig, if any.
fn fs_log(fs: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    let mut file = std::fs::File::from(fs.try_clone().expect("dup fs fd"));
    while let Ok(n) = file.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(" (");
        out.push_str(String::from_utf8_lossy(&buf[..n]).trim());
        out.push(')');
    }
    out
}

/// A path for mount(2) that names what `fd` is, without re-resolving.
fn fd_path(fd: &impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// mount(2) for a file system, with its options as text.
fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> io::Result<()> {
    let data = CString::new(data).map_err(io::Error::other)?;
    Ok(rm::mount(
        source,
        target,
        fstype,
        flags,
        Some(data.as_c_str()),
    )?)
}

fn parts(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

fn open_target(root: &Root, target: &str) -> anyhow::Result<OwnedFd> {
    let p = parts(target);
    rustix::fs::openat2(
        root.open_dir(&[])?,
        p.join("/").as_str(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    )
    .with_context(|| format!("mount target `{target}`"))
}

fn mount_dev(root: &Root) -> anyhow::Result<()> {
    let dev = open_target(root, "/dev")?;
    mount_fs(
        "tmpfs",
        fd_path(&dev).as_str(),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "mode=755,size=65536k",
    )
    .context("tmpfs on /dev")?;
    drop(dev);
    let dev = root.open_dir(&["dev"])?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let fd = rustix::fs::openat(
            &dev,
            node,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )?;
        drop(fd);
        let target = open_target(root, &format!("/dev/{node}"))?;
        rm::mount_bind(format!("/dev/{node}").as_str(), fd_path(&target).as_str())
            .with_context(|| format!("binding /dev/{node}"))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        rustix::fs::symlinkat(target, &dev, name)?;
    }
    for dir in ["pts", "shm", "mqueue"] {
        rustix::fs::mkdirat(&dev, dir, Mode::from_raw_mode(0o755))?;
    }
    let pts = open_target(root, "/dev/pts")?;
    mount_fs(
        "devpts",
        fd_path(&pts).as_str(),
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )
    .context("devpts")?;
    let shm = open_target(root, "/dev/shm")?;
    mount_fs(
        "shm",
        fd_path(&shm).as_str(),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV,
        "mode=1777,size=65536k",
    )
    .context("tmpfs on /dev/shm")?;
    let mq = open_target(root, "/dev/mqueue")?;
    mount_fs(
        "mqueue",
        fd_path(&mq).as_str(),
        "mqueue",
        MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV,
        "",
    )
    .context("mqueue")?;
    Ok(())
}

fn mount_build_mount(root: &Root, m: &Mount) -> anyhow::Result<()> {
    match m {
        Mount::Bind {
            source,
            target,
            readonly,
        } => {
            let t = open_target(root, target)?;
            rm::mount_bind_recursive(source.as_path(), fd_path(&t).as_str())?;
            if *readonly {
                // Re-resolve: the fd still names the covered directory.
                let t = open_target(root, target)?;
                rm::mount_remount(
                    fd_path(&t).as_str(),
                    MountFlags::BIND | MountFlags::RDONLY,
                    "",
                )?;
            }
        }
        Mount::Scratch {
            source,
            upper,
            work,
            target,
        } => {
            let t = open_target(root, target)?;
            mount_overlay_at(&[source], Some((upper, work)), &t)?;
        }
        Mount::Tmpfs { target, size } => {
            let t = open_target(root, target)?;
            let opts = size.map(|s| format!("size={s}")).unwrap_or_default();
            mount_fs(
                "tmpfs",
                fd_path(&t).as_str(),
                "tmpfs",
                MountFlags::NOSUID | MountFlags::NODEV,
                opts.as_str(),
            )?;
        }
    }
    Ok(())
}

fn run_process(spec: &Spec, process: &Process) -> anyhow::Result<i32> {
    if process.argv.is_empty() {
        bail!("no command to run");
    }
    // SAFETY: this process is single-threaded; the child only calls
    // async-signal-safe code until exec, or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        let err = child(spec, process).unwrap_err();
        eprintln!("kiln sandbox: {err:#}");
        // SAFETY: leave without running the parent's destructors.
        unsafe {
            libc::_exit(if err.downcast_ref::<NotFound>().is_some() {
                127
            } else {
                125
            })
        };
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::last_os_error()).context("waitpid");
        }
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}: executable file not found in $PATH")]
struct NotFound(String);

/// In the forked child, pid 1 of the new namespace. Returns only on error.
fn child(spec: &Spec, process: &Process) -> anyhow::Result<std::convert::Infallible> {
    // SAFETY: prctl with a plain signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let root = Root::open(&spec.rootfs)?;
    let proc_dir = open_target(&root, "/proc")?;
    mount_fs(
        "proc",
        fd_path(&proc_dir).as_str(),
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "",
    )
    .context("mounting /proc")?;
    let sys = open_target(&root, "/sys")?;
    let ro = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if mount_fs("sysfs", fd_path(&sys).as_str(), "sysfs", ro, "").is_err() {
        // sysfs cannot be mounted in some network namespaces; a read-only
        // view of the host's is what Docker falls back to as well.
        rm::mount_bind_recursive("/sys", fd_path(&sys).as_str()).context("binding /sys")?;
        let sys = open_target(&root, "/sys")?;
        rm::mount_remount(
            fd_path(&sys).as_str(),
            MountFlags::BIND | MountFlags::RDONLY,
            "",
        )?;
    }
    drop((proc_dir, sys, root));
    rustix::process::chdir(&spec.rootfs).context("chdir rootfs")?;
    rustix::process::pivot_root(".", ".").context("pivot_root")?;
    rm::unmount(".", rm::UnmountFlags::DETACH).context("detaching the old root")?;
    rustix::process::chdir("/")?;

    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let id = super::users::resolve(&process.user, &passwd, &group)?;
    std::fs::create_dir_all(&process.workdir)
        .with_context(|| format!("creating WORKDIR `{}`", process.workdir))?;
    let mut env = process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", id.home));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let program = find_program(&process.argv[0], &path_var)?;
    // SAFETY: plain id syscalls on this thread.
    unsafe {
        let groups: Vec<libc::gid_t> = id.supplementary.clone();
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(io::Error::last_os_error()).context("setgroups");
        }
        if libc::setgid(id.gid) != 0 {
            return Err(io::Error::last_os_error()).context("setgid");
        }
        if libc::setuid(id.uid) != 0 {
            return Err(io::Error::last_os_error()).context("setuid");
        }
    }
    rustix::process::chdir(process.workdir.as_str())
        .with_context(|| format!("chdir `{}`", process.workdir))?;
    let to_c = |s: &String| CString::new(s.as_bytes()).context("NUL byte in argument");
    let argv: Vec<CString> = process
        .argv
        .iter()
        .map(to_c)
        .collect::<anyhow::Result<_>>()?;
    let envp: Vec<CString> = env.iter().map(to_c).collect::<anyhow::Result<_>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let program = CString::new(program).context("NUL byte in program")?;
    // SAFETY: NUL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    Err(io::Error::last_os_error()).with_context(|| format!("exec `{}`", process.argv[0]))
}

fn find_program(name: &str, path: &str) -> anyhow::Result<String> {
    if name.contains('/') {
        return Ok(name.to_string());
    }
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{dir}/{name}");
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(NotFound(name.to_string()).into())
}
