//! One cgroup per job: memory without swap, a process count and a CPU quota, the list of its
//! processes (to signal them all) and whether the kernel killed one for memory.
//!
//! The unified hierarchy (v2) is used when its memory controller is available; otherwise the v1
//! controllers `memory` (required), `pids` and `cpu` (each used when mounted). Jobs' groups are
//! created beneath the keeper's own group, in a folder of their own, so the limits of whatever
//! runs the keeper (a systemd unit, a container) still apply to its jobs.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use rustix::process::{Pid, Signal, kill_process};

use crate::Limits;

/// Which cgroup hierarchy holds the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// The unified hierarchy.
    V2,
    /// The per-controller hierarchies.
    V1,
}

/// Where the jobs' cgroups are made: the folder (one per controller on v1) beneath which each
/// job gets its own group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2: one folder with the memory and pids controllers enabled for its children.
    V2 {
        /// The jobs' parent group.
        parent: PathBuf,
    },
    /// cgroup v1: a parent group per mounted controller.
    V1 {
        /// Beneath the memory controller (required).
        memory: PathBuf,
        /// Beneath the pids controller, when mounted.
        pids: Option<PathBuf>,
        /// Beneath the cpu controller, when mounted.
        cpu: Option<PathBuf>,
    },
}

/// Reads the machine's cgroup mounts and the keeper's own groups.
fn mounts() -> io::Result<Vec<(String, PathBuf, Vec<String>)>> {
    let text = fs::read_to_string("/proc/self/mounts")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (fstype, point, options) = (*fields.get(2)?, *fields.get(1)?, *fields.get(3)?);
            (fstype == "cgroup" || fstype == "cgroup2").then(|| {
                (
                    fstype.to_owned(),
                    PathBuf::from(point),
                    options.split(',').map(str::to_owned).collect(),
                )
            })
        })
        .collect())
}

/// The keeper's own group in the hierarchy named `key` (`""` for v2, a controller name for v1).
fn own_group(key: &str) -> io::Result<Option<String>> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    Ok(text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if key.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|name| name == key)
        };
        matches.then(|| path.to_owned())
    }))
}

/// `mount` joined with the group path `group` (absolute within the hierarchy).
fn beneath(mount: &Path, group: &str, folder: &str) -> PathBuf {
    let mut path = mount.to_path_buf();
    for part in group.split('/').filter(|part| !part.is_empty()) {
        path.push(part);
    }
    path.push(folder);
    path
}

impl Hierarchy {
    /// Finds where jobs' groups can be made, named `folder` beneath the keeper's own groups, and
    /// makes that folder. v2 is chosen when its memory controller can be enabled there.
    ///
    /// # Errors
    ///
    /// A description of why no memory controller can be used.
    pub fn prepare(folder: &str) -> Result<Self, String> {
        let mounts = mounts().map_err(|error| format!("cannot read the mounts: {error}"))?;
        let mut reasons = Vec::new();
        if let Some((_, point, _)) = mounts.iter().find(|(kind, ..)| kind == "cgroup2") {
            match Self::prepare_v2(point, folder) {
                Ok(hierarchy) => return Ok(hierarchy),
                Err(why) => reasons.push(format!("cgroup v2: {why}")),
            }
        }
        let controller = |name: &str| {
            mounts
                .iter()
                .find(|(kind, _, options)| kind == "cgroup" && options.iter().any(|o| o == name))
                .map(|(_, point, _)| point.clone())
        };
        let v1 = |name: &str| -> Result<PathBuf, String> {
            let point = controller(name).ok_or_else(|| format!("no {name} controller mounted"))?;
            let group = own_group(name)
                .map_err(|error| error.to_string())?
                .unwrap_or_default();
            let path = beneath(&point, &group, folder);
            fs::create_dir_all(&path)
                .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
            Ok(path)
        };
        match v1("memory") {
            Ok(memory) => Ok(Self::V1 {
                memory,
                pids: v1("pids").ok(),
                cpu: v1("cpu").ok(),
            }),
            Err(why) => {
                reasons.push(format!("cgroup v1: {why}"));
                Err(reasons.join("; "))
            }
        }
    }

    fn prepare_v2(point: &Path, folder: &str) -> Result<Self, String> {
        let group = own_group("")
            .map_err(|error| error.to_string())?
            .unwrap_or_default();
        let own = beneath(point, &group, "");
        let available = fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
        if !available.split_whitespace().any(|name| name == "memory") {
            return Err("the memory controller is not available to the keeper's group".into());
        }
        let parent = own.join(folder);
        fs::create_dir_all(&parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        // A group with processes cannot hand controllers to its children (the keeper's own group
        // holds the keeper), so the jobs' parent is a child of it that holds none.
        for controller in ["+memory", "+pids", "+cpu"] {
            let _ = fs::write(own.join("cgroup.subtree_control"), controller);
            let _ = fs::write(parent.join("cgroup.subtree_control"), controller);
        }
        let enabled = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        if !enabled.split_whitespace().any(|name| name == "memory") {
            return Err(format!(
                "cannot enable the memory controller beneath {} (run the keeper in a delegated \
                 group, e.g. a systemd unit with Delegate=yes)",
                own.display()
            ));
        }
        Ok(Self::V2 { parent })
    }

    /// The groups left beneath the jobs' folder (by jobs of an earlier run of the keeper).
    pub(crate) fn leftovers(&self) -> Vec<JobCgroup> {
        let (version, roots): (CgroupVersion, Vec<&PathBuf>) = match self {
            Self::V2 { parent } => (CgroupVersion::V2, vec![parent]),
            Self::V1 { memory, pids, cpu } => (
                CgroupVersion::V1,
                [Some(memory), pids.as_ref(), cpu.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect(),
            ),
        };
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        for root in &roots {
            for entry in fs::read_dir(root).into_iter().flatten().flatten() {
                if entry.path().is_dir() && !names.contains(&entry.file_name()) {
                    names.push(entry.file_name());
                }
            }
        }
        names
            .into_iter()
            .map(|name| {
                let folders: Vec<PathBuf> = roots
                    .iter()
                    .map(|root| root.join(&name))
                    .filter(|folder| folder.is_dir())
                    .collect();
                // The pids group lists every process on v1 when there is one.
                let procs = match (self, folders.as_slice()) {
                    (
                        Self::V1 {
                            pids: Some(pids), ..
                        },
                        _,
                    ) if pids.join(&name).is_dir() => pids.join(&name),
                    (_, [first, ..]) => first.clone(),
                    (_, []) => PathBuf::new(),
                };
                JobCgroup {
                    version,
                    folders,
                    procs,
                }
            })
            .collect()
    }

    /// The version in use.
    pub fn version(&self) -> CgroupVersion {
        match self {
            Self::V2 { .. } => CgroupVersion::V2,
            Self::V1 { .. } => CgroupVersion::V1,
        }
    }

    /// Whether processes are counted (fork bombs stopped).
    pub fn limits_pids(&self) -> bool {
        match self {
            Self::V2 { parent } => controller_enabled(parent, "pids"),
            Self::V1 { pids, .. } => pids.is_some(),
        }
    }

    /// Whether CPU is limited by a quota.
    pub fn limits_cpu(&self) -> bool {
        match self {
            Self::V2 { parent } => controller_enabled(parent, "cpu"),
            Self::V1 { cpu, .. } => cpu.is_some(),
        }
    }
}

fn controller_enabled(parent: &Path, name: &str) -> bool {
    fs::read_to_string(parent.join("cgroup.subtree_control"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|enabled| enabled == name)
}

/// One job's group (one folder per controller on v1).
#[derive(Debug, Clone)]
pub(crate) struct JobCgroup {
    version: CgroupVersion,
    /// The folders; the first is the memory group (also the one whose processes are listed on
    /// v1 when no pids controller is mounted).
    folders: Vec<PathBuf>,
    /// The folder whose `cgroup.procs` lists every process of the job.
    procs: PathBuf,
}

fn write(path: &Path, value: impl AsRef<[u8]>) -> io::Result<()> {
    fs::write(path, value).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot write {}: {error}", path.display()),
        )
    })
}

impl JobCgroup {
    /// Makes the group `name` with `limits`; on failure, nothing is left.
    pub(crate) fn create(hierarchy: &Hierarchy, name: &str, limits: &Limits) -> io::Result<Self> {
        let mut made = Vec::new();
        let result = Self::make(hierarchy, name, limits, &mut made);
        if result.is_err() {
            for folder in made.iter().rev() {
                let _ = fs::remove_dir(folder);
            }
        }
        result
    }

    fn make(
        hierarchy: &Hierarchy,
        name: &str,
        limits: &Limits,
        made: &mut Vec<PathBuf>,
    ) -> io::Result<Self> {
        let period: u64 = 100_000;
        let quota = period * u64::from(limits.cpu_percent) / 100;
        let memory = limits.memory_bytes().to_string();
        match hierarchy {
            Hierarchy::V2 { parent } => {
                let folder = parent.join(name);
                fs::create_dir(&folder)?;
                made.push(folder.clone());
                let group = Self {
                    version: CgroupVersion::V2,
                    folders: vec![folder.clone()],
                    procs: folder.clone(),
                };
                write(&folder.join("memory.max"), &memory)?;
                if folder.join("memory.swap.max").exists() {
                    write(&folder.join("memory.swap.max"), "0")?;
                }
                if folder.join("pids.max").exists() {
                    write(&folder.join("pids.max"), limits.pids.to_string())?;
                }
                if folder.join("cpu.max").exists() {
                    write(&folder.join("cpu.max"), format!("{quota} {period}"))?;
                }
                Ok(group)
            }
            Hierarchy::V1 {
                memory: m,
                pids,
                cpu,
            } => {
                let memory_folder = m.join(name);
                fs::create_dir(&memory_folder)?;
                made.push(memory_folder.clone());
                let mut group = Self {
                    version: CgroupVersion::V1,
                    folders: vec![memory_folder.clone()],
                    procs: memory_folder.clone(),
                };
                write(&memory_folder.join("memory.limit_in_bytes"), &memory)?;
                // Memory plus swap at the same figure: no swap.
                if memory_folder.join("memory.memsw.limit_in_bytes").exists() {
                    write(&memory_folder.join("memory.memsw.limit_in_bytes"), &memory)?;
                }
                if let Some(pids) = pids {
                    let folder = pids.join(name);
                    fs::create_dir(&folder)?;
                    made.push(folder.clone());
                    group.folders.push(folder.clone());
                    group.procs = folder.clone();
                    write(&folder.join("pids.max"), limits.pids.to_string())?;
                }
                if let Some(cpu) = cpu {
                    let folder = cpu.join(name);
                    fs::create_dir(&folder)?;
                    made.push(folder.clone());
                    group.folders.push(folder.clone());
                    write(&folder.join("cpu.cfs_period_us"), period.to_string())?;
                    write(&folder.join("cpu.cfs_quota_us"), quota.to_string())?;
                }
                Ok(group)
            }
        }
    }

    /// Moves process `pid` (and the children it makes from now on) into the group.
    pub(crate) fn add(&self, pid: u32) -> io::Result<()> {
        for folder in &self.folders {
            write(&folder.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the group.
    pub(crate) fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.procs.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// Sends `signal` to every process of the group.
    pub(crate) fn signal(&self, signal: Signal) {
        self.signal_except(signal, &[]);
    }

    /// Sends `signal` to every process of the group but those `spared`.
    pub(crate) fn signal_except(&self, signal: Signal, spared: &[i32]) {
        for pid in self.pids() {
            if spared.contains(&pid) {
                continue;
            }
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = kill_process(pid, signal);
            }
        }
    }

    /// Kills every process of the group, until none is left (a process forking while it is
    /// killed is caught on a later round; the pids limit bounds how many there can be).
    pub(crate) async fn kill_all(&self) {
        if self.version == CgroupVersion::V2 && self.procs.join("cgroup.kill").exists() {
            let _ = fs::write(self.procs.join("cgroup.kill"), "1");
        }
        for _ in 0..200 {
            if self.pids().is_empty() {
                return;
            }
            self.signal(Signal::KILL);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::warn!(group = %self.procs.display(), "processes left after 200 rounds of SIGKILL");
    }

    /// Whether the kernel killed a process of the group for lack of memory.
    pub(crate) fn oom_killed(&self) -> bool {
        let memory = &self.folders[0];
        let (file, key) = match self.version {
            CgroupVersion::V2 => ("memory.events", "oom_kill"),
            CgroupVersion::V1 => ("memory.oom_control", "oom_kill"),
        };
        fs::read_to_string(memory.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once(' '))
            .any(|(name, count)| name == key && count.trim().parse::<u64>().unwrap_or(0) > 0)
    }

    /// The most memory the group used, in bytes, when the kernel reports it.
    pub(crate) fn peak_memory(&self) -> Option<u64> {
        let file = match self.version {
            CgroupVersion::V2 => "memory.peak",
            CgroupVersion::V1 => "memory.max_usage_in_bytes",
        };
        fs::read_to_string(self.folders[0].join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Removes the group's folders now, without waiting for their processes to go (a group
    /// that still has some stays; the keeper's next start finds it).
    pub(crate) fn remove_now(&self) {
        for folder in &self.folders {
            let _ = fs::remove_dir(folder);
        }
    }

    /// Removes the group's folders (once its processes are gone).
    pub(crate) async fn remove(&self) {
        for folder in &self.folders {
            for _ in 0..50 {
                match fs::remove_dir(folder) {
                    Ok(()) => break,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            if folder.exists() {
                tracing::warn!(group = %folder.display(), "a job's cgroup could not be removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_paths_are_joined_beneath_the_mount() {
        assert_eq!(
            beneath(Path::new("/sys/fs/cgroup/memory"), "/a/b", "jobs"),
            PathBuf::from("/sys/fs/cgroup/memory/a/b/jobs")
        );
        assert_eq!(
            beneath(Path::new("/sys/fs/cgroup"), "/", "jobs"),
            PathBuf::from("/sys/fs/cgroup/jobs")
        );
    }

    /// The kernel's interface files, as a job's group has them, written by hand: what the group
    /// writes and how it reads them back (the v2 path cannot run for real on machines without a
    /// v2 memory controller).
    #[test]
    fn a_v2_group_writes_its_limits_and_reads_the_kernels_counters() {
        let root = tempfile::tempdir().unwrap();
        let hierarchy = Hierarchy::V2 {
            parent: root.path().to_path_buf(),
        };
        let limits = Limits {
            memory_mb: 64,
            tmp_mb: 8,
            output_mb: 8,
            ..Limits::default()
        };
        let group = JobCgroup::create(&hierarchy, "job-1", &limits).unwrap();
        let folder = root.path().join("job-1");
        assert_eq!(
            fs::read_to_string(folder.join("memory.max")).unwrap(),
            "67108864"
        );
        assert!(!group.oom_killed());
        fs::write(
            folder.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        fs::write(folder.join("memory.peak"), "66000000\n").unwrap();
        fs::write(folder.join("cgroup.procs"), "12\n34\n").unwrap();
        assert!(group.oom_killed());
        assert_eq!(group.peak_memory(), Some(66_000_000));
        assert_eq!(group.pids(), [12, 34]);
        let leftovers = hierarchy.leftovers();
        assert_eq!(leftovers.len(), 1);
        assert_eq!(leftovers[0].pids(), [12, 34]);
    }

    #[test]
    fn a_v1_group_spans_its_controllers() {
        let root = tempfile::tempdir().unwrap();
        let (memory, pids, cpu) = (
            root.path().join("memory"),
            root.path().join("pids"),
            root.path().join("cpu"),
        );
        for folder in [&memory, &pids, &cpu] {
            fs::create_dir(folder).unwrap();
        }
        let hierarchy = Hierarchy::V1 {
            memory: memory.clone(),
            pids: Some(pids.clone()),
            cpu: Some(cpu.clone()),
        };
        let limits = Limits {
            cpu_percent: 150,
            pids: 20,
            ..Limits::default()
        };
        let group = JobCgroup::create(&hierarchy, "job-2", &limits).unwrap();
        assert_eq!(
            fs::read_to_string(memory.join("job-2/memory.limit_in_bytes")).unwrap(),
            (512_u64 << 20).to_string()
        );
        assert_eq!(
            fs::read_to_string(pids.join("job-2/pids.max")).unwrap(),
            "20"
        );
        assert_eq!(
            fs::read_to_string(cpu.join("job-2/cpu.cfs_quota_us")).unwrap(),
            "150000"
        );
        assert_eq!(
            fs::read_to_string(cpu.join("job-2/cpu.cfs_period_us")).unwrap(),
            "100000"
        );
        // Processes are listed by the pids group; the kernel's OOM count by the memory group's.
        fs::write(pids.join("job-2/cgroup.procs"), "7\n").unwrap();
        assert_eq!(group.pids(), [7]);
        fs::write(
            memory.join("job-2/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        assert!(!group.oom_killed());
        fs::write(
            memory.join("job-2/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert!(group.oom_killed());
        // A group whose name is taken in one controller is refused (on a real hierarchy the
        // folders made before are removed; here their files keep them).
        fs::create_dir(cpu.join("job-3")).unwrap();
        let error = JobCgroup::create(&hierarchy, "job-3", &limits).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    }
}
