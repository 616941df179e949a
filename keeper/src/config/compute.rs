//! The `[compute]` table: whether and how the keeper runs compute jobs, in its local sandbox or
//! on a Kubernetes cluster.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Default jobs running at once.
pub const DEFAULT_CONCURRENCY: u32 = 2;
/// Most jobs running at once.
pub const MAX_CONCURRENCY: u32 = 256;
/// Default runs of one job (counting runs a restart interrupted).
pub const DEFAULT_MAX_RUNS: u32 = 2;
/// Default largest algorithm file, in KiB.
pub const DEFAULT_MAX_ALGORITHM_KB: u64 = 1024;
/// Largest algorithm file accepted at all, in KiB (the request carries it).
pub const MAX_ALGORITHM_KB: u64 = 16 * 1024;

/// Compute in situ (the `[compute]` table; without it the keeper sells no compute). At start
/// the backend is checked (the local sandbox probed, or the cluster's API, permissions and
/// network isolation), and the keeper refuses to start when it cannot isolate jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// Where jobs run: `local` (this machine's sandbox) or `kubernetes` (one Job per run on a
    /// cluster, set up in `[compute.kubernetes]`).
    pub backend: BackendKind,
    /// Folder of the jobs' workspaces (inputs staged for the sandbox, outputs, logs) and of the
    /// results kept for their owners.
    pub work_root: PathBuf,
    /// Jobs running at once; more wait, queued.
    pub concurrency: u32,
    /// Runs of one job, counting runs a restart of the keeper interrupted, before it fails.
    pub max_runs: u32,
    /// Largest algorithm file accepted, in KiB.
    pub max_algorithm_kb: u64,
    /// Seconds a stopped or timed-out job has between SIGTERM and SIGKILL.
    pub grace_secs: u64,
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// The `insitu-sandbox-init` binary (default: next to the keeper's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_init: Option<PathBuf>,
    /// The runtimes offered; an asset's compute policy names those it allows.
    pub runtimes: Vec<RuntimeConfig>,
    /// The cluster jobs run on, when `backend = "kubernetes"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesConfig>,
}

/// Where compute jobs run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// In this machine's sandbox (namespaces, cgroups, Landlock, seccomp).
    #[default]
    Local,
    /// As Kubernetes Jobs on a cluster (`[compute.kubernetes]`).
    Kubernetes,
}

/// Fewest seconds a finished Job is kept by the cluster (the keeper reads it first).
pub const MIN_TTL_SECS: i32 = 300;

/// Default account id jobs run as on a cluster (`nobody`).
pub const DEFAULT_RUN_AS_USER: i64 = 65534;

/// The cluster compute jobs run on (the `[compute.kubernetes]` table). The keeper's `work_root`
/// must be the mount of `workspace_claim`, a claim the keeper and the jobs' pods share: jobs read
/// their staged inputs from it (read-only), and a collector step copies each result into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// A kubeconfig file; absent: the pod's service account when the keeper runs in the
    /// cluster, else `$KUBECONFIG` or `~/.kube/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig's context to use (default: its current context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The namespace jobs run in (it must exist; the keeper's role is bound there).
    pub namespace: String,
    /// The existing PersistentVolumeClaim (ReadWriteMany) mounted at the keeper's `work_root`.
    pub workspace_claim: String,
    /// The storage class of each run's output volume (absent: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_storage_class: Option<String>,
    /// The image of the collector and of the isolation check, pinned by digest; it needs `sh`,
    /// `stat`, `cp`, `chmod`, `cat`, `true` and an `nc` that runs a program once connected
    /// (`-e`): busybox has them.
    pub helper_image: String,
    /// The account id jobs run as (never 0).
    #[serde(default = "default_run_as_user")]
    pub run_as_user: i64,
    /// Seconds the cluster keeps a finished Job before deleting it, should the keeper not.
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs_after_finished: i32,
    /// `host:port` the isolation check tries to reach from a job's pod (default: the API
    /// server's service address inside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_target: Option<String>,
    /// Seconds the start-up isolation check may take (pulling its image included).
    #[serde(default = "default_probe_timeout_secs")]
    pub probe_timeout_secs: u64,
    /// Node classes: a run goes to the smallest preset that holds its policy's CPU and memory
    /// (none listed: any node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<ResourcePreset>,
}

fn default_run_as_user() -> i64 {
    DEFAULT_RUN_AS_USER
}

fn default_ttl_secs() -> i32 {
    3600
}

fn default_probe_timeout_secs() -> u64 {
    180
}

/// A class of nodes runs may be placed on (a `[[compute.kubernetes.presets]]` table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcePreset {
    /// Its name, for logs.
    pub name: String,
    /// The most CPU a run placed here may have, in percent of one core.
    pub cpu_percent: u32,
    /// The most memory a run placed here may have, in MiB.
    pub memory_mb: u64,
    /// Node labels the run's pod must match.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
}

impl KubernetesConfig {
    /// A table with the required settings and defaults for the rest.
    pub fn new(namespace: &str, workspace_claim: &str, helper_image: &str) -> Self {
        Self {
            kubeconfig: None,
            context: None,
            namespace: namespace.to_owned(),
            workspace_claim: workspace_claim.to_owned(),
            output_storage_class: None,
            helper_image: helper_image.to_owned(),
            run_as_user: DEFAULT_RUN_AS_USER,
            ttl_secs_after_finished: default_ttl_secs(),
            canary_target: None,
            probe_timeout_secs: default_probe_timeout_secs(),
            presets: Vec::new(),
        }
    }

    /// Checks the table.
    ///
    /// # Errors
    ///
    /// What is wrong, in words.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_dns_label(&self.namespace) {
            return Err(format!(
                "kubernetes.namespace {:?}: 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit",
                self.namespace
            ));
        }
        if !valid_dns_subdomain(&self.workspace_claim) {
            return Err(format!(
                "kubernetes.workspace_claim {:?} is not a valid claim name",
                self.workspace_claim
            ));
        }
        if let Some(class) = &self.output_storage_class
            && !valid_dns_subdomain(class)
        {
            return Err(format!(
                "kubernetes.output_storage_class {class:?} is not a valid storage class name"
            ));
        }
        if !pinned_by_digest(&self.helper_image) {
            return Err(format!(
                "kubernetes.helper_image {:?} must be pinned by digest (name@sha256:<64 hex digits>)",
                self.helper_image
            ));
        }
        if !(1..=i64::from(u32::MAX)).contains(&self.run_as_user) {
            return Err("kubernetes.run_as_user must be a non-root account id (1 or more)".into());
        }
        if self.ttl_secs_after_finished < MIN_TTL_SECS {
            // The keeper reads a finished Job's pod and logs before it deletes them itself.
            return Err(format!(
                "kubernetes.ttl_secs_after_finished must be at least {MIN_TTL_SECS}"
            ));
        }
        if !(10..=3600).contains(&self.probe_timeout_secs) {
            return Err("kubernetes.probe_timeout_secs must be between 10 and 3600".into());
        }
        if let Some(target) = &self.canary_target {
            let valid = target.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && host.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
                    && port.parse::<u16>().is_ok_and(|port| port > 0)
            });
            if !valid {
                return Err(format!(
                    "kubernetes.canary_target {target:?} must be host:port"
                ));
            }
        }
        let mut names = Vec::new();
        for preset in &self.presets {
            if preset.name.is_empty() || names.contains(&preset.name.as_str()) {
                return Err(format!(
                    "kubernetes preset {:?}: names must be set and distinct",
                    preset.name
                ));
            }
            names.push(preset.name.as_str());
            if preset.cpu_percent == 0 || preset.memory_mb == 0 {
                return Err(format!(
                    "kubernetes preset {}: cpu_percent and memory_mb must be above 0",
                    preset.name
                ));
            }
        }
        Ok(())
    }

    /// The smallest preset (by memory, then CPU) that holds a run of `cpu_percent` and
    /// `memory_mb`; `Ok(None)` when no presets are listed.
    ///
    /// # Errors
    ///
    /// When presets are listed and none is large enough.
    pub fn preset_for(
        &self,
        cpu_percent: u32,
        memory_mb: u64,
    ) -> Result<Option<&ResourcePreset>, String> {
        if self.presets.is_empty() {
            return Ok(None);
        }
        self.presets
            .iter()
            .filter(|preset| preset.cpu_percent >= cpu_percent && preset.memory_mb >= memory_mb)
            .min_by_key(|preset| (preset.memory_mb, preset.cpu_percent))
            .map(Some)
            .ok_or_else(|| {
                format!("no resource preset holds {cpu_percent}% CPU and {memory_mb} MiB of memory")
            })
    }
}

/// Whether `name` is a DNS label, as Kubernetes names namespaces.
fn valid_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is a DNS subdomain, as Kubernetes names most objects.
fn valid_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(valid_dns_label)
}

/// Whether `image` names an image by its digest (`name@sha256:` and 64 hex digits).
pub fn pinned_by_digest(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(name, digest)| {
        !name.is_empty()
            && !name.contains(char::is_whitespace)
            && digest.len() == 64
            && digest
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// A runtime jobs may run in (a `[[compute.runtimes]]` table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Its name, as compute policies list it (e.g. `python3`).
    pub name: String,
    /// The program and its first arguments, as seen inside the sandbox (beneath `/usr`); the
    /// algorithm's path is appended. Empty: the algorithm itself is executed (a static binary,
    /// or a script whose `#!` line names an interpreter beneath `/usr`).
    #[serde(default)]
    pub command: Vec<String>,
    /// What it offers (version, packages), for consumers.
    #[serde(default)]
    pub description: String,
    /// Its container image, pinned by digest (`name@sha256:...`): required by the Kubernetes
    /// backend, unused by the local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Makes it a federated-learning runtime (a `[compute.runtimes.flower]` table): the job is
    /// a Flower SuperNode that runs the consumer's app (the algorithm file, a FAB) next to the
    /// data and reaches the consumer's aggregator, and nothing else, through its egress. Its
    /// `command` must be empty. Local backend only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flower: Option<FlowerRuntime>,
}

/// Where a federated-learning runtime's parts are (a `[compute.runtimes.flower]` table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowerRuntime {
    /// The Flower environment: a virtual environment of the system's Python holding Flower and
    /// the packages apps may import (`script/flower-deps.sh` makes one), readable by the jobs'
    /// account. Mounted read-only at the same path inside.
    pub environment: PathBuf,
    /// The folder holding the `insitu_flower` package (the project's `federated/`), readable
    /// by the jobs' account.
    pub package: PathBuf,
    /// Ranges where consumers' aggregators may be although the outbound guard refuses them
    /// (loopback, private networks): public addresses are allowed without it. Kept apart from
    /// `[outbound] allow`, which is for file servers: a job's egress carries whatever its app
    /// sends. The keeper's own API and RPC endpoints are refused whatever this says.
    #[serde(default)]
    pub aggregators_allow: Vec<ipnet::IpNet>,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            work_root: PathBuf::from("compute"),
            concurrency: DEFAULT_CONCURRENCY,
            max_runs: DEFAULT_MAX_RUNS,
            max_algorithm_kb: DEFAULT_MAX_ALGORITHM_KB,
            grace_secs: 5,
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            sandbox_init: None,
            runtimes: vec![RuntimeConfig {
                name: "python3".to_owned(),
                command: vec!["/usr/bin/python3".to_owned(), "-I".to_owned()],
                description: "the system's Python 3, standard library only".to_owned(),
                image: None,
                flower: None,
            }],
            backend: BackendKind::Local,
            kubernetes: None,
        }
    }
}

/// Whether `name` may name a runtime: what a compute policy's schema accepts.
fn valid_runtime_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

impl ComputeConfig {
    /// Checks the table.
    ///
    /// # Errors
    ///
    /// What is wrong, in words.
    pub fn validate(&self) -> Result<(), String> {
        if self.work_root.as_os_str().is_empty() {
            return Err("work_root must name a folder".into());
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}"
            ));
        }
        if !(1..=10).contains(&self.max_runs) {
            return Err("max_runs must be between 1 and 10".into());
        }
        if !(1..=MAX_ALGORITHM_KB).contains(&self.max_algorithm_kb) {
            return Err(format!(
                "max_algorithm_kb must be between 1 and {MAX_ALGORITHM_KB}"
            ));
        }
        if !(1..=300).contains(&self.grace_secs) {
            return Err("grace_secs must be between 1 and 300".into());
        }
        if self.runtimes.is_empty() {
            return Err("runtimes must list at least one runtime".into());
        }
        let mut names = Vec::new();
        for runtime in &self.runtimes {
            if !valid_runtime_name(&runtime.name) {
                return Err(format!(
                    "runtime name {:?}: 1 to 32 lower-case letters, digits, '.', '_' or '-'",
                    runtime.name
                ));
            }
            if names.contains(&runtime.name.as_str()) {
                return Err(format!("runtime {} is listed twice", runtime.name));
            }
            names.push(runtime.name.as_str());
            match runtime.command.first() {
                None => {}
                Some(program) if Path::new(program).is_absolute() => {}
                Some(_) => {
                    return Err(format!(
                        "runtime {}: command must start with an absolute path",
                        runtime.name
                    ));
                }
            }
            if let Some(flower) = &runtime.flower {
                if !runtime.command.is_empty() {
                    return Err(format!(
                        "runtime {}: a flower runtime runs the SuperNode; its command must be empty",
                        runtime.name
                    ));
                }
                if !flower.environment.is_absolute() || !flower.package.is_absolute() {
                    return Err(format!(
                        "runtime {}: flower.environment and flower.package must be absolute paths",
                        runtime.name
                    ));
                }
                // The environment is mounted at its own path: not where the sandbox has its own
                // folders.
                if ["/usr", "/proc", "/dev", "/output", "/.insitu"]
                    .iter()
                    .any(|folder| flower.environment.starts_with(folder))
                    || flower.environment == Path::new("/")
                    || flower.environment == Path::new("/tmp")
                {
                    return Err(format!(
                        "runtime {}: flower.environment cannot be beneath /usr, /proc, /dev, \
                         /output or /.insitu (the sandbox's own folders)",
                        runtime.name
                    ));
                }
                if self.backend == BackendKind::Kubernetes {
                    return Err(format!(
                        "runtime {}: flower runtimes run on the local backend only",
                        runtime.name
                    ));
                }
            }
            if let Some(image) = &runtime.image
                && !pinned_by_digest(image)
            {
                return Err(format!(
                    "runtime {}: image {image:?} must be pinned by digest (name@sha256:<64 hex digits>)",
                    runtime.name
                ));
            }
        }
        match (self.backend, &self.kubernetes) {
            (BackendKind::Local, _) => {}
            (BackendKind::Kubernetes, None) => {
                return Err("backend = \"kubernetes\" needs a [compute.kubernetes] table".into());
            }
            (BackendKind::Kubernetes, Some(kubernetes)) => {
                kubernetes.validate()?;
                if let Some(runtime) = self.runtimes.iter().find(|runtime| runtime.image.is_none())
                {
                    return Err(format!(
                        "runtime {}: the Kubernetes backend needs its image",
                        runtime.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The runtime named `name`, if this keeper offers it.
    pub fn runtime(&self, name: &str) -> Option<&RuntimeConfig> {
        self.runtimes.iter().find(|runtime| runtime.name == name)
    }

    /// Resolves the relative paths against `base`.
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        let kubeconfig = self
            .kubernetes
            .as_mut()
            .and_then(|kubernetes| kubernetes.kubeconfig.as_mut());
        let flower = self
            .runtimes
            .iter_mut()
            .filter_map(|runtime| runtime.flower.as_mut())
            .flat_map(|flower| [&mut flower.environment, &mut flower.package]);
        for path in [
            Some(&mut self.work_root),
            self.sandbox_init.as_mut(),
            kubeconfig,
        ]
        .into_iter()
        .flatten()
        .chain(flower)
        {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = base.join(&*path);
            }
        }
    }

    /// The `insitu-sandbox-init` binary: as set, else next to the running program.
    pub fn sandbox_init_path(&self) -> PathBuf {
        self.sandbox_init.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| {
                    exe.parent()
                        .map(|folder| folder.join("insitu-sandbox-init"))
                })
                .unwrap_or_else(|| PathBuf::from("insitu-sandbox-init"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_setting_is_checked() {
        ComputeConfig::default().validate().unwrap();
        type Change = fn(&mut ComputeConfig);
        let cases: [(Change, &str); 11] = [
            (|c| c.concurrency = 0, "concurrency"),
            (|c| c.max_runs = 0, "max_runs"),
            (
                |c| c.max_algorithm_kb = MAX_ALGORITHM_KB + 1,
                "max_algorithm_kb",
            ),
            (|c| c.grace_secs = 0, "grace_secs"),
            (|c| c.runtimes.clear(), "at least one runtime"),
            (|c| c.runtimes[0].name = "Python 3".into(), "runtime name"),
            (
                |c| c.runtimes[0].command = vec!["python3".into()],
                "absolute path",
            ),
            (
                |c| {
                    let again = c.runtimes[0].clone();
                    c.runtimes.push(again);
                },
                "listed twice",
            ),
            (
                |c| {
                    c.runtimes[0].flower = Some(FlowerRuntime {
                        environment: "/opt/flower".into(),
                        package: "/opt/insitu/federated".into(),
                        aggregators_allow: Vec::new(),
                    });
                },
                "command must be empty",
            ),
            (
                |c| {
                    c.runtimes[0].command.clear();
                    c.runtimes[0].flower = Some(FlowerRuntime {
                        environment: "flower".into(),
                        package: "/opt/insitu/federated".into(),
                        aggregators_allow: Vec::new(),
                    });
                },
                "absolute paths",
            ),
            (
                |c| {
                    c.runtimes[0].command.clear();
                    c.runtimes[0].flower = Some(FlowerRuntime {
                        environment: "/usr/lib/flower".into(),
                        package: "/opt/insitu/federated".into(),
                        aggregators_allow: Vec::new(),
                    });
                },
                "sandbox's own folders",
            ),
        ];
        for (change, expected) in cases {
            let mut config = ComputeConfig::default();
            change(&mut config);
            let error = config.validate().unwrap_err();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }

    #[test]
    fn relative_paths_follow_the_configuration_file() {
        let mut config = ComputeConfig {
            sandbox_init: Some(PathBuf::from("bin/init")),
            ..ComputeConfig::default()
        };
        config.resolve_paths(Path::new("/etc/insitu"));
        assert_eq!(config.work_root, PathBuf::from("/etc/insitu/compute"));
        assert_eq!(
            config.sandbox_init_path(),
            PathBuf::from("/etc/insitu/bin/init")
        );
        assert!(config.runtime("python3").is_some());
        assert!(config.runtime("ruby").is_none());
    }
}
