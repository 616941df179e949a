//! Starting a job in its sandbox, watching it, and telling how it ended.

use std::{
    ffi::OsString,
    io::{Read, Write},
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::ExitStatusExt,
    },
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use rustix::process::Signal;
use serde::Serialize;
use tokio::{io::AsyncWriteExt, process::Command, sync::watch};

use crate::{
    Hierarchy, Isolation, Limits, LimitsError,
    cgroup::JobCgroup,
    relay::{self, Egress, EgressUse, HostRelay},
    supervise,
};

/// Where the sandbox's tools are and how jobs are run.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// The `insitu-sandbox-init` binary (mounted read-only inside each job).
    pub init: PathBuf,
    /// The account jobs run as when the keeper runs as root (user id, group id).
    pub run_as: (u32, u32),
    /// The folder made beneath the keeper's own cgroup for the jobs' groups.
    pub cgroup_folder: String,
    /// Time between SIGTERM and SIGKILL when a job is stopped or runs out of time.
    pub grace: Duration,
    /// How often the output folder's size is measured.
    pub poll: Duration,
}

impl SandboxConfig {
    /// The defaults, with the `init` binary at `init`: bubblewrap from `/usr/bin`, jobs as
    /// `nobody` (65534), five seconds of grace, the output measured every 100 ms.
    pub fn new(init: PathBuf) -> Self {
        Self {
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            init,
            run_as: (65534, 65534),
            cgroup_folder: "insitu-jobs".into(),
            grace: Duration::from_secs(5),
            poll: Duration::from_millis(100),
        }
    }
}

/// A host folder or file mounted read-only in the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Path on the host.
    pub host: PathBuf,
    /// Absolute path inside the job.
    pub inside: PathBuf,
}

/// One job to run.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The job's name: 1 to 64 ASCII letters, digits, `-` or `_` (its cgroup's name).
    pub name: String,
    /// The program (a path inside the job) and its arguments.
    pub command: Vec<String>,
    /// Folders and files mounted read-only (inputs, the algorithm, its parameters). They must
    /// be readable by the jobs' account.
    pub read_only: Vec<Mount>,
    /// The host folder mounted writable at `/output`; it must exist and be empty.
    pub output: PathBuf,
    /// The file the job's standard output and error are written to (at most
    /// [`Limits::log_kb`]).
    pub log: PathBuf,
    /// Environment variables set for the job (the rest of the environment is cleared).
    pub env: Vec<(String, String)>,
    /// What it may use.
    pub limits: Limits,
    /// Its one way out, if it has one (otherwise it has no network at all).
    pub egress: Option<Egress>,
}

/// Why a job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The machine lacks what jobs need.
    #[error("compute is refused on this machine: {0}")]
    Unavailable(String),
    /// A limit out of range.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// The job description is not valid.
    #[error("invalid job: {0}")]
    Invalid(String),
    /// A file operation or the start of a process failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The program exited with status 0.
    Succeeded,
    /// The program exited with another status, or was killed by a signal of its own making.
    Failed,
    /// The kernel killed it for using more than its memory.
    OutOfMemory,
    /// It ran past its wall-clock or CPU time.
    TimedOut,
    /// Its output folder grew past its limit (or a file past the largest size).
    OutputTooLarge,
    /// It was stopped on request.
    Stopped,
    /// The sandbox itself failed to start the program.
    SandboxFailed,
}

/// What is known of a job once it has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// The exit status, when the program exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Milliseconds from start to end.
    pub wall_ms: u64,
    /// Peak memory of its cgroup, in bytes, when the kernel reports it.
    pub peak_memory_bytes: Option<u64>,
    /// Bytes the output folder takes at the end (on disk, or a sparse file's length).
    pub output_bytes: u64,
    /// Bytes of logs written by the job (kept or not).
    pub log_bytes: u64,
    /// Whether logs were dropped past the limit.
    pub log_truncated: bool,
    /// What went through its egress, when it had one.
    pub egress: Option<EgressUse>,
}

/// Runs jobs in sandboxes.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    hierarchy: Hierarchy,
    as_root: bool,
}

/// Asks a running job to stop (SIGTERM, grace, SIGKILL).
#[derive(Debug, Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    /// Stops the job; a job that already ended is not affected.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// A running job.
#[derive(Debug)]
pub struct Job {
    child: tokio::process::Child,
    cgroup: JobCgroup,
    limits: Limits,
    output: PathBuf,
    started: Instant,
    stop: Arc<watch::Sender<bool>>,
    stopped: watch::Receiver<bool>,
    /// The folder the supervisor writes its report to.
    report: tempfile::TempDir,
    /// The host's half of its egress, when it has one.
    relay: Option<HostRelay>,
    logs: tokio::task::JoinHandle<(u64, bool)>,
    /// Set once `wait` has cleaned up; otherwise dropping the job kills it.
    finished: bool,
    grace: Duration,
    poll: Duration,
}

/// Why the keeper ended a job, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Time,
    Stop,
    Output,
}

/// The exit status `bwrap` and `init` use for a sandbox that failed before the program ran.
const SANDBOX_FAILED: i32 = 125;

/// Most files an output folder may hold (beyond, it counts as too large).
const MAX_OUTPUT_FILES: u64 = 10_000;

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The top-level folders beside `/usr` that programs look in, as bubblewrap arguments: links
/// where the system merged them into `/usr`, read-only mounts where it did not.
pub(crate) fn system_links() -> Vec<OsString> {
    let mut args = Vec::new();
    for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(top);
        let inside = format!("/{top}");
        if let Ok(target) = std::fs::read_link(&host) {
            args.extend([
                OsString::from("--symlink"),
                target.into_os_string(),
                OsString::from(&inside),
            ]);
        } else if host.is_dir() {
            args.extend(["--ro-bind".into(), host.into_os_string(), inside.into()]);
        }
    }
    args
}

/// Folders the job sees besides its own: the system's programs and libraries, read-only.
const SYSTEM: &str = "/usr";

/// Where `init` is mounted inside.
const INIT_INSIDE: &str = "/.insitu/init";

/// Where the host output folder is mounted inside (only the supervisor may write there).
const EXPORT_INSIDE: &str = "/.insitu/export";

/// Inside paths a job's mounts may not take, nor any path beneath them but `/tmp`'s.
const RESERVED: [&str; 7] = ["/", "/usr", "/proc", "/dev", "/tmp", "/output", "/.insitu"];

/// The job's scratch folder: a mount beneath it is made inside the job's own (a program whose
/// scripts name their own path, such as a virtual environment made beneath the host's `/tmp`,
/// must be mounted where it is).
const SCRATCH: &str = "/tmp";

impl Sandbox {
    /// A sandbox on a machine with `isolation`, which must meet the minimum.
    ///
    /// # Errors
    ///
    /// [`SandboxError::Unavailable`] with what is missing.
    pub fn new(config: SandboxConfig, isolation: &Isolation) -> Result<Self, SandboxError> {
        isolation
            .ensure_minimum()
            .map_err(SandboxError::Unavailable)?;
        let hierarchy =
            Hierarchy::prepare(&config.cgroup_folder).map_err(SandboxError::Unavailable)?;
        Ok(Self {
            config,
            hierarchy,
            as_root: rustix::process::geteuid().is_root(),
        })
    }

    /// Kills the processes of every job's cgroup left by an earlier run of the keeper (one killed
    /// while jobs ran) and removes the groups. Returns how many there were.
    pub async fn sweep(&self) -> usize {
        let leftovers = self.hierarchy.leftovers();
        for group in &leftovers {
            group.kill_all().await;
            group.remove().await;
        }
        leftovers.len()
    }

    /// The account jobs run as, as seen from the host.
    pub fn job_account(&self) -> Option<(u32, u32)> {
        self.as_root.then_some(self.config.run_as)
    }

    fn check(&self, spec: &JobSpec) -> Result<(), SandboxError> {
        spec.limits.validate()?;
        if !valid_name(&spec.name) {
            return Err(SandboxError::Invalid(format!(
                "job name {:?}: 1 to 64 letters, digits, - or _",
                spec.name
            )));
        }
        if spec.command.is_empty() || spec.command[0].is_empty() {
            return Err(SandboxError::Invalid("no program to run".into()));
        }
        for mount in &spec.read_only {
            let inside = &mount.inside;
            let reserved = RESERVED.iter().any(|path| {
                inside == Path::new(path)
                    || (*path != "/" && *path != SCRATCH && inside.starts_with(path))
            });
            if !inside.is_absolute()
                || reserved
                || inside
                    .components()
                    .any(|part| matches!(part, std::path::Component::ParentDir))
            {
                return Err(SandboxError::Invalid(format!(
                    "mount point {} (absolute, outside the sandbox's own folders)",
                    inside.display()
                )));
            }
            if !mount.host.exists() {
                return Err(SandboxError::Invalid(format!(
                    "{} does not exist",
                    mount.host.display()
                )));
            }
        }
        let mut entries = std::fs::read_dir(&spec.output)?;
        if entries.next().is_some() {
            return Err(SandboxError::Invalid(
                "the output folder is not empty".into(),
            ));
        }
        for (name, _) in &spec.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(SandboxError::Invalid(format!("environment name {name:?}")));
            }
        }
        if let Some(egress) = &spec.egress {
            if egress.port == 0 {
                return Err(SandboxError::Invalid(
                    "the egress needs a port inside (1 to 65535)".into(),
                ));
            }
            if egress.to.port() == 0 || egress.to.ip().is_unspecified() {
                return Err(SandboxError::Invalid(format!(
                    "egress destination {} (an address and a port)",
                    egress.to
                )));
            }
        }
        Ok(())
    }

    /// bubblewrap's arguments for `spec`, with the supervisor's report written to `report` and
    /// the egress's socket (if any) in the folder `relay`.
    fn bwrap_args(&self, spec: &JobSpec, report: &Path, relay: Option<&Path>) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        push(&[
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--hostname",
            "insitu-job",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "TMPDIR",
            "/tmp",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--ro-bind",
            SYSTEM,
            SYSTEM,
        ]);
        for (name, value) in &spec.env {
            push(&["--setenv", name, value]);
        }
        args.extend(system_links());
        args.extend([
            "--ro-bind".into(),
            self.config.init.clone().into_os_string(),
            INIT_INSIDE.into(),
        ]);
        // Mounts beneath /tmp come after its tmpfs, which would hide them.
        let (in_scratch, elsewhere): (Vec<&Mount>, Vec<&Mount>) = spec
            .read_only
            .iter()
            .partition(|mount| mount.inside.starts_with(SCRATCH));
        let ro_bind = |mount: &Mount| -> [OsString; 3] {
            [
                "--ro-bind".into(),
                mount.host.clone().into_os_string(),
                mount.inside.clone().into_os_string(),
            ]
        };
        for mount in elsewhere {
            args.extend(ro_bind(mount));
        }
        if let Some(folder) = relay {
            args.extend([
                "--ro-bind".into(),
                folder.as_os_str().to_owned(),
                relay::SOCKET_FOLDER_INSIDE.into(),
            ]);
        }
        args.extend([
            "--bind".into(),
            spec.output.clone().into_os_string(),
            EXPORT_INSIDE.into(),
            "--bind".into(),
            report.as_os_str().to_owned(),
            supervise::REPORT_FOLDER.into(),
            "--size".into(),
            spec.limits.output_bytes().to_string().into(),
            "--tmpfs".into(),
            "/output".into(),
            "--size".into(),
            spec.limits.tmp_bytes().to_string().into(),
            "--tmpfs".into(),
            SCRATCH.into(),
        ]);
        for mount in in_scratch {
            args.extend(ro_bind(mount));
        }
        args.extend([
            "--proc".into(),
            "/proc".into(),
            "--dev".into(),
            "/dev".into(),
            "--chdir".into(),
            "/output".into(),
            "--".into(),
            INIT_INSIDE.into(),
            "supervise".into(),
            "--results".into(),
            "/output".into(),
            "--export".into(),
            EXPORT_INSIDE.into(),
            "--limit".into(),
            spec.limits.output_bytes().to_string().into(),
        ]);
        if let (Some(egress), Some(_)) = (&spec.egress, relay) {
            args.extend([
                "--egress-port".into(),
                egress.port.to_string().into(),
                "--egress-socket".into(),
                Path::new(relay::SOCKET_FOLDER_INSIDE)
                    .join(relay::SOCKET_NAME)
                    .into_os_string(),
            ]);
        }
        let mut readable: Vec<OsString> = ["/usr", INIT_INSIDE, "/proc", "/dev"]
            .into_iter()
            .map(OsString::from)
            .collect();
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            if Path::new("/").join(top).exists() {
                readable.push(format!("/{top}").into());
            }
        }
        readable.extend(
            spec.read_only
                .iter()
                .map(|mount| mount.inside.clone().into_os_string()),
        );
        for path in readable {
            args.extend(["--read".into(), path]);
        }
        for path in ["/tmp", "/dev/null"] {
            args.extend(["--write".into(), path.into()]);
        }
        args.push("--".into());
        args.extend(spec.command.iter().map(OsString::from));
        args
    }

    /// Starts `spec` and returns the running job. Nothing of the job runs before its cgroup is
    /// set: the launcher waits for the keeper's go.
    ///
    /// # Errors
    ///
    /// [`SandboxError`] when the job is not valid or cannot start (nothing is left behind).
    pub async fn start(&self, spec: JobSpec) -> Result<Job, SandboxError> {
        self.check(&spec)?;
        if let Some((uid, gid)) = self.job_account() {
            std::os::unix::fs::chown(&spec.output, Some(uid), Some(gid))?;
            std::fs::set_permissions(&spec.output, std::fs::Permissions::from_mode(0o700))?;
        }
        let report = tempfile::Builder::new()
            .prefix("insitu-report-")
            .tempdir()?;
        if let Some((uid, gid)) = self.job_account() {
            std::os::unix::fs::chown(report.path(), Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(report.path(), std::fs::Permissions::from_mode(0o700))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&spec.log)?;
        let relay = spec
            .egress
            .map(|egress| HostRelay::start(egress.to, self.job_account()))
            .transpose()?;
        let cgroup = JobCgroup::create(&self.hierarchy, &spec.name, &spec.limits)?;
        let relay_folder = relay.as_ref().map(HostRelay::folder);
        match self
            .spawn(&spec, log, &cgroup, report.path(), relay_folder)
            .await
        {
            Ok((child, logs)) => {
                let (stop, stopped) = watch::channel(false);
                Ok(Job {
                    child,
                    cgroup,
                    limits: spec.limits,
                    output: spec.output,
                    started: Instant::now(),
                    stop: Arc::new(stop),
                    stopped,
                    report,
                    relay,
                    logs,
                    finished: false,
                    grace: self.config.grace,
                    poll: self.config.poll.max(Duration::from_millis(10)),
                })
            }
            Err(error) => {
                cgroup.kill_all().await;
                cgroup.remove().await;
                Err(error)
            }
        }
    }

    async fn spawn(
        &self,
        spec: &JobSpec,
        log: std::fs::File,
        cgroup: &JobCgroup,
        report: &Path,
        relay: Option<&Path>,
    ) -> Result<(tokio::process::Child, tokio::task::JoinHandle<(u64, bool)>), SandboxError> {
        let (reader, writer) = std::io::pipe()?;
        let mut command = Command::new(&self.config.init);
        command
            .arg("launch")
            .arg("--cpu-seconds")
            .arg(spec.limits.cpu_seconds().to_string())
            .arg("--file-bytes")
            .arg(spec.limits.output_bytes().to_string())
            .arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--")
            .arg(&self.config.bwrap)
            .args(self.bwrap_args(spec, report, relay))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::from(writer.try_clone()?))
            .stderr(Stdio::from(writer))
            .process_group(0)
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.job_account() {
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn()?;
        // The parent's copies of the pipe's writing end go with the command.
        drop(command);
        let logs = keep_logs(reader, log, spec.limits.log_bytes());
        let pid = child
            .id()
            .ok_or_else(|| SandboxError::Invalid("the launcher exited at once".into()))?;
        let started = async {
            cgroup.add(pid)?;
            let mut stdin = child.stdin.take().ok_or_else(|| {
                std::io::Error::other("the launcher's standard input is not a pipe")
            })?;
            stdin.write_all(b"1").await?;
            stdin.flush().await?;
            Ok::<_, std::io::Error>(())
        };
        if let Err(error) = started.await {
            let _ = child.kill().await;
            return Err(error.into());
        }
        Ok((child, logs))
    }
}

/// Copies the job's logs from `reader` into `log`, keeping at most `cap` bytes (then a line
/// saying so) and reading, to drop, the rest. Returns the bytes the job wrote and whether some
/// were dropped.
fn keep_logs(
    mut reader: std::io::PipeReader,
    mut log: std::fs::File,
    cap: u64,
) -> tokio::task::JoinHandle<(u64, bool)> {
    tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0_u8; 64 * 1024];
        let (mut total, mut kept, mut noted) = (0_u64, 0_u64, false);
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            total += read as u64;
            let take =
                usize::try_from(cap.saturating_sub(kept)).map_or(read, |left| left.min(read));
            if take > 0 {
                if log.write_all(&buffer[..take]).is_err() {
                    kept = cap;
                } else {
                    kept += take as u64;
                }
            }
            if take < read && !noted {
                noted = true;
                let _ = writeln!(log, "\n[insitu: logs past {cap} bytes were dropped]");
            }
        }
        let truncated = total > cap;
        let _ = log.flush();
        (total, truncated)
    })
}

/// Bytes and files beneath `folder` (a sparse file counts at its length).
fn folder_size(folder: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0_u64, 0_u64);
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.path().symlink_metadata() else {
                continue;
            };
            files += 1;
            bytes = bytes.saturating_add(metadata.len().max(metadata.blocks() * 512));
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            if files > MAX_OUTPUT_FILES {
                return (bytes, files);
            }
        }
    }
    (bytes, files)
}

impl Job {
    /// A handle that stops the job.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// The launcher's process id (bubblewrap's, once it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn measure(&self) -> (u64, u64) {
        let output = self.output.clone();
        tokio::task::spawn_blocking(move || folder_size(&output))
            .await
            .unwrap_or((0, 0))
    }

    /// Waits for the job to end (or ends it: time, stop, output size), removes its cgroup and
    /// tells how it ended.
    pub async fn wait(mut self) -> Outcome {
        let deadline = tokio::time::Instant::from_std(self.started)
            + Duration::from_secs(self.limits.wall_secs);
        let mut stop = self.stopped.clone();
        let mut poll = tokio::time::interval(self.poll);
        let mut reason = None;
        let status = loop {
            // A stop asked before this wait began counts too.
            if *stop.borrow_and_update() {
                reason = Some(Reason::Stop);
                break self.terminate().await;
            }
            tokio::select! {
                status = self.child.wait() => break status,
                () = tokio::time::sleep_until(deadline), if reason.is_none() => {
                    reason = Some(Reason::Time);
                    break self.terminate().await;
                }
                changed = stop.changed(), if reason.is_none() => {
                    if changed.is_err() {
                        // Every stopper is gone: nobody can stop the job any more.
                        stop = watch::channel(false).1;
                    }
                }
                _ = poll.tick() => {
                    let (bytes, files) = self.measure().await;
                    if bytes > self.limits.output_bytes() || files > MAX_OUTPUT_FILES {
                        reason = Some(Reason::Output);
                        self.cgroup.kill_all().await;
                        break self.child.wait().await;
                    }
                }
            }
        };
        // Whatever the program left running (it had its own session) goes with it.
        self.cgroup.kill_all().await;
        let (log_bytes, log_truncated) = (&mut self.logs).await.unwrap_or((0, false));
        // The job is gone: so is its way out.
        let egress = self.relay.take().map(|relay| relay.usage());
        let oom = self.cgroup.oom_killed();
        let peak_memory_bytes = self.cgroup.peak_memory();
        self.cgroup.remove().await;
        self.finished = true;
        let (output_bytes, _) = self.measure().await;
        let report: Option<supervise::Report> =
            std::fs::read(self.report.path().join(supervise::REPORT_FILE))
                .ok()
                .and_then(|json| serde_json::from_slice(&json).ok());
        let bwrap_code = status
            .as_ref()
            .ok()
            .and_then(std::process::ExitStatus::code);
        let (exit_code, signal) = match &report {
            Some(report) => (report.exit_code, report.signal),
            None => match &status {
                // bubblewrap reports a process killed by signal N as status 128 + N.
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) if code > 128 && code < 128 + 65 => (None, Some(code - 128)),
                    (code, signal) => (code, signal),
                },
                Err(_) => (None, None),
            },
        };
        let ending = match (reason, &report) {
            (Some(Reason::Time), _) => Ending::TimedOut,
            (Some(Reason::Stop), _) => Ending::Stopped,
            (Some(Reason::Output), _) => Ending::OutputTooLarge,
            (None, _) if oom => Ending::OutOfMemory,
            (None, Some(report)) if report.output_full || report.export_error.is_some() => {
                Ending::OutputTooLarge
            }
            (None, Some(_)) if signal == Some(libc::SIGXFSZ) => Ending::OutputTooLarge,
            (None, Some(_)) if signal == Some(libc::SIGXCPU) => Ending::TimedOut,
            (None, Some(_)) if exit_code == Some(0) => Ending::Succeeded,
            (None, Some(_)) => Ending::Failed,
            // No report: the supervisor never ran (bubblewrap failed, status 1, or the sandbox's
            // own start failed, status 125), or the program killed it.
            (None, None) if matches!(bwrap_code, Some(1 | SANDBOX_FAILED)) => Ending::SandboxFailed,
            (None, None) => Ending::Failed,
        };
        Outcome {
            ending,
            exit_code,
            signal,
            wall_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            peak_memory_bytes,
            output_bytes,
            log_bytes,
            log_truncated,
            egress,
        }
    }

    /// SIGTERM to every process of the job, then SIGKILL to whatever is left after the grace.
    /// bubblewrap's two processes and the supervisor are spared the SIGTERM: they would die at
    /// once and take the sandbox with them, leaving the program no grace.
    async fn terminate(&mut self) -> std::io::Result<std::process::ExitStatus> {
        // bubblewrap, the sandbox's process 1 and the supervisor, each the only child of the
        // one before: the program is the supervisor's child.
        let mut spared = Vec::new();
        let mut current = self.child.id().and_then(|pid| i32::try_from(pid).ok());
        while let Some(pid) = current.filter(|_| spared.len() < 3) {
            spared.push(pid);
            current = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .ok()
                .and_then(|children| children.split_whitespace().next()?.parse().ok());
        }
        self.cgroup.signal_except(Signal::TERM, &spared);
        if let Ok(status) = tokio::time::timeout(self.grace, self.child.wait()).await {
            return status;
        }
        self.cgroup.kill_all().await;
        self.child.wait().await
    }
}

impl Drop for Job {
    /// A job dropped before `wait` ended it is killed and its cgroup removed (in the background
    /// when a runtime is at hand, else at once and best effort).
    fn drop(&mut self) {
        if !self.finished {
            self.cgroup.signal(Signal::KILL);
            let cgroup = self.cgroup.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        cgroup.kill_all().await;
                        cgroup.remove().await;
                    });
                }
                Err(_) => cgroup.remove_now(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_plain() {
        assert!(valid_name("job-1_a"));
        assert!(!valid_name(""));
        assert!(!valid_name("../x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"a".repeat(65)));
    }

    #[test]
    fn output_size_counts_sparse_files_at_their_length() {
        let folder = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(folder.path().join("sparse")).unwrap();
        file.set_len(10 << 20).unwrap();
        std::fs::create_dir(folder.path().join("sub")).unwrap();
        std::fs::write(folder.path().join("sub/small"), b"abc").unwrap();
        let (bytes, files) = folder_size(folder.path());
        assert_eq!(files, 3);
        assert!(bytes >= (10 << 20) + 3);
    }
}
