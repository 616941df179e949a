//! What the machine offers to isolate jobs, found by trying each mechanism for real: a sandbox is
//! started and reports from inside what holds; a cgroup is made with limits and removed.

use std::{process::Stdio, time::Duration};

use serde::Serialize;
use tokio::process::Command;

use crate::{
    CgroupVersion, Hierarchy, Limits, SandboxConfig, cgroup::JobCgroup, confine::LandlockStatus,
};

/// The isolation mechanisms found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Isolation {
    /// bubblewrap's version, when it runs.
    pub bwrap: Option<String>,
    /// A sandbox with every namespace unshared started and ran a program.
    pub namespaces: bool,
    /// Inside it, no network interface but the loopback, and IP sockets refused.
    pub network_isolated: bool,
    /// The account jobs run as on the host (the keeper's own when it is not root).
    pub job_uid: u32,
    /// The cgroup hierarchy that holds jobs.
    pub cgroup: Option<CgroupVersion>,
    /// A job's memory can be limited.
    pub memory_limit: bool,
    /// A job's processes can be counted (fork bombs stopped).
    pub pids_limit: bool,
    /// A job's CPU can be limited by a quota.
    pub cpu_limit: bool,
    /// How far Landlock is enforced inside.
    pub landlock: Option<LandlockStatus>,
    /// The seccomp filter loads.
    pub seccomp: bool,
    /// What is missing or failed, in words.
    pub problems: Vec<String>,
}

impl Isolation {
    /// Whether jobs may run: no network, read-only inputs (both from the namespaces) and a
    /// memory limit are the minimum.
    ///
    /// # Errors
    ///
    /// What is missing, in words, for the operator.
    pub fn ensure_minimum(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        if !self.namespaces {
            missing.push("a bubblewrap sandbox (install the `bubblewrap` package; user namespaces must be allowed)");
        } else if !self.network_isolated {
            missing.push("a sandbox without network");
        }
        if !self.memory_limit {
            missing.push("a memory limit (a cgroup memory controller the keeper may use)");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            let mut text = format!("missing {}", missing.join("; "));
            if !self.problems.is_empty() {
                text.push_str(&format!(" ({})", self.problems.join("; ")));
            }
            Err(text)
        }
    }
}

/// What the `check` mode of `insitu-sandbox-init` prints.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    landlock: LandlockStatus,
    ip_socket: bool,
    interfaces: Vec<String>,
}

/// Probes made by this process (each makes its own test group).
static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Tries each mechanism `config` would use and reports what works.
pub async fn probe(config: &SandboxConfig) -> Isolation {
    let as_root = rustix::process::geteuid().is_root();
    let mut isolation = Isolation {
        bwrap: None,
        namespaces: false,
        network_isolated: false,
        job_uid: if as_root {
            config.run_as.0
        } else {
            rustix::process::geteuid().as_raw()
        },
        cgroup: None,
        memory_limit: false,
        pids_limit: false,
        cpu_limit: false,
        landlock: None,
        seccomp: false,
        problems: Vec::new(),
    };
    match Command::new(&config.bwrap).arg("--version").output().await {
        Ok(output) if output.status.success() => {
            isolation.bwrap = Some(String::from_utf8_lossy(&output.stdout).trim().to_owned());
        }
        Ok(output) => isolation.problems.push(format!(
            "{} --version failed: {}",
            config.bwrap.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => isolation
            .problems
            .push(format!("cannot run {}: {error}", config.bwrap.display())),
    }
    if isolation.bwrap.is_some() {
        check_inside(config, as_root, &mut isolation).await;
    }
    match Hierarchy::prepare(&config.cgroup_folder) {
        Ok(hierarchy) => {
            isolation.cgroup = Some(hierarchy.version());
            let name = format!(
                "probe-{}-{}",
                std::process::id(),
                PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            match JobCgroup::create(&hierarchy, &name, &Limits::default()) {
                Ok(group) => {
                    isolation.memory_limit = true;
                    isolation.pids_limit = hierarchy.limits_pids();
                    isolation.cpu_limit = hierarchy.limits_cpu();
                    group.remove().await;
                }
                Err(error) => isolation
                    .problems
                    .push(format!("cannot make a job's cgroup: {error}")),
            }
        }
        Err(why) => isolation.problems.push(why),
    }
    isolation
}

async fn check_inside(config: &SandboxConfig, as_root: bool, isolation: &mut Isolation) {
    let mut command = Command::new(&config.bwrap);
    command
        .args([
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--ro-bind",
            "/usr",
            "/usr",
        ])
        .args([
            "--ro-bind".as_ref(),
            config.init.as_os_str(),
            "/.insitu/init".as_ref(),
        ]);
    command.args(crate::run::system_links());
    command
        .args(["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--"])
        .args([
            "/.insitu/init",
            "check",
            "--read",
            "/usr",
            "--read",
            "/proc",
        ])
        .args(["--write", "/tmp"])
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if as_root {
        command.uid(config.run_as.0).gid(config.run_as.1);
    }
    let output = match tokio::time::timeout(Duration::from_secs(30), command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => {
            isolation
                .problems
                .push(format!("cannot start a sandbox: {error}"));
            return;
        }
        Err(_) => {
            isolation
                .problems
                .push("a sandbox did not finish in 30 s".into());
            return;
        }
    };
    if !output.status.success() {
        isolation.problems.push(format!(
            "a sandbox failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
        return;
    }
    match serde_json::from_slice::<Check>(&output.stdout) {
        Ok(check) => {
            isolation.namespaces = true;
            isolation.seccomp = !check.ip_socket;
            isolation.network_isolated = check.interfaces == ["lo"];
            isolation.landlock = Some(check.landlock);
            if check.landlock == LandlockStatus::None {
                isolation
                    .problems
                    .push("Landlock is not enforced by this kernel".into());
            }
        }
        Err(error) => isolation
            .problems
            .push(format!("the sandbox's report is unreadable: {error}")),
    }
}
