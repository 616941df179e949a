//! The API objects a run is made of, built from typed Kubernetes objects: a deny-all
//! NetworkPolicy, an output claim, the run's Job and its collector's Job, and the Jobs of the
//! start-up isolation check.
//!
//! Every pod is hardened the same way: no restarts, no service-account token, no service links,
//! no host namespaces, a non-root account, a read-only root filesystem, no privilege escalation,
//! every capability dropped, seccomp `RuntimeDefault`, and limits equal to requests.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        batch::v1::{Job, JobSpec},
        core::v1::{
            Capabilities, Container, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaim,
            PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext,
            PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecurityContext,
            Volume, VolumeMount, VolumeResourceRequirements,
        },
        networking::v1::{NetworkPolicy, NetworkPolicySpec},
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::LabelSelector},
};
use kube::api::ObjectMeta;

use super::super::Prepared;
use crate::config::{KubernetesConfig, ResourcePreset};

/// The label every object of a keeper carries, with the keeper's instance as its value.
pub const KEEPER_LABEL: &str = "insitu.dev/keeper";
/// The label naming the run an object belongs to (the run's object name).
pub const RUN_LABEL: &str = "insitu.dev/run";
/// The label naming a pod's step: `run`, `collect` or `canary`.
pub const STEP_LABEL: &str = "insitu.dev/step";
/// The label Kubernetes sets on a Job's pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The container that runs the algorithm.
pub const ALGORITHM_CONTAINER: &str = "algorithm";
/// The collector's exit status when the output is over its limit.
pub const OUTPUT_TOO_LARGE_EXIT: i32 = 3;
/// A probe's exit status when it saw what it should not: the isolated probe reached its
/// target, or the control probe could not.
pub const PROBE_UNEXPECTED_EXIT: i32 = 7;
/// The control probe's exit status when it cannot read the keeper's marker.
pub const MARKER_MISSING_EXIT: i32 = 8;

/// What every object of one keeper shares.
#[derive(Debug, Clone)]
pub struct Blueprint {
    /// The `[compute.kubernetes]` table.
    pub config: KubernetesConfig,
    /// The keeper's instance (the value of [`KEEPER_LABEL`]).
    pub instance: String,
    /// Seconds a pod has between SIGTERM and SIGKILL (the keeper's `grace_secs`).
    pub grace_secs: u64,
}

/// Seconds the collector may take.
pub const COLLECT_DEADLINE_SECS: u64 = 600;

/// Who the pods of a run run as, and where they go.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The group owning the workspace: the algorithm reads its staged files, and the collector
    /// writes the result, through it.
    pub group: i64,
    /// The node class, if presets are set.
    pub preset: Option<ResourcePreset>,
}

impl Blueprint {
    /// The labels of the objects of run `name` at step `step`.
    pub fn labels(&self, name: &str, step: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "insitu-keeper".to_owned(),
            ),
            (KEEPER_LABEL.to_owned(), self.instance.clone()),
            (RUN_LABEL.to_owned(), name.to_owned()),
            (STEP_LABEL.to_owned(), step.to_owned()),
        ])
    }

    /// The selector of every object this keeper made.
    pub fn keeper_selector(&self) -> String {
        format!("{KEEPER_LABEL}={}", self.instance)
    }

    fn meta(&self, name: &str, run: &str, step: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.config.namespace.clone()),
            labels: Some(self.labels(run, step)),
            ..ObjectMeta::default()
        }
    }

    /// A NetworkPolicy denying every connection into and out of the pods of run `name` (both
    /// steps), made before its first pod.
    pub fn network_policy(&self, name: &str) -> NetworkPolicy {
        NetworkPolicy {
            metadata: self.meta(name, name, "run"),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([
                        (KEEPER_LABEL.to_owned(), self.instance.clone()),
                        (RUN_LABEL.to_owned(), name.to_owned()),
                    ])),
                    match_expressions: None,
                }),
                policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
                ingress: Some(Vec::new()),
                egress: Some(Vec::new()),
            }),
        }
    }

    /// The claim the run's output is written to, `output_mb` large.
    pub fn output_claim(&self, name: &str, output_mb: u64) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: self.meta(&output_claim_name(name), name, "run"),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                storage_class_name: self.config.output_storage_class.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity(format!("{}Mi", output_mb.max(1))),
                    )])),
                    limits: None,
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        }
    }

    /// The Job running `job`'s algorithm in `image`: its inputs and algorithm read-only from
    /// the workspace claim, its output on the run's own claim, `/tmp` in memory.
    pub fn run_job(&self, name: &str, job: &Prepared, image: &str, placement: &Placement) -> Job {
        let workspace = self.workspace_path(job);
        let limits = &job.limits;
        let mut env: Vec<EnvVar> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/tmp"),
            ("TMPDIR", "/tmp"),
            ("LANG", "C.UTF-8"),
        ]
        .into_iter()
        .map(|(name, value)| env_var(name, value))
        .collect();
        env.extend(job.env.iter().map(|(name, value)| env_var(name, value)));
        let container = Container {
            name: ALGORITHM_CONTAINER.to_owned(),
            image: Some(image.to_owned()),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            command: Some(job.command.clone()),
            env: Some(env),
            working_dir: Some("/output".to_owned()),
            resources: Some(resources(limits.cpu_percent, limits.memory_mb)),
            volume_mounts: Some(vec![
                mount(
                    "workspace",
                    "/data",
                    Some(format!("{workspace}/input")),
                    true,
                ),
                mount(
                    "workspace",
                    "/algorithm",
                    Some(format!("{workspace}/algorithm")),
                    true,
                ),
                mount("output", "/output", Some("output".to_owned()), false),
                mount("tmp", "/tmp", None, false),
            ]),
            ..hardened_container()
        };
        let volumes = vec![
            claim_volume("workspace", &self.config.workspace_claim, true),
            claim_volume("output", &output_claim_name(name), false),
            Volume {
                name: "tmp".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".to_owned()),
                    size_limit: Some(Quantity(format!("{}Mi", limits.tmp_mb.max(1)))),
                }),
                ..Volume::default()
            },
        ];
        let mut pod = self.hardened_pod(
            vec![container],
            volumes,
            self.config.run_as_user,
            placement.group,
            limits.wall_secs,
        );
        pod.node_selector = placement
            .preset
            .as_ref()
            .filter(|preset| !preset.node_selector.is_empty())
            .map(|preset| preset.node_selector.clone());
        // The output claim's root is made the group's (writable by the run); the workspace,
        // mounted read-only, is left as it is.
        if let Some(context) = pod.security_context.as_mut() {
            context.fs_group = Some(placement.group);
            context.fs_group_change_policy = Some("OnRootMismatch".to_owned());
        }
        self.job(name, name, "run", pod, limits.wall_secs, job)
    }

    /// The Job copying the run's regular files from its output claim into the workspace's
    /// `output/` folder, refusing (exit status [`OUTPUT_TOO_LARGE_EXIT`]) when the output is
    /// larger than `limits.output_mb`.
    pub fn collector_job(&self, name: &str, job: &Prepared, placement: &Placement) -> Job {
        let workspace = self.workspace_path(job);
        let limit = job.limits.output_mb.saturating_mul(1024 * 1024);
        let most = super::super::runner::MAX_RESULT_FILES;
        // Each file's length (a sparse file counts in full, a hard link once per name, as the
        // copy writes them) is held against what is left of the limit, so no sum overflows.
        // Only regular files are copied (the keeper publishes nothing else), at most as many as
        // it publishes, each made readable by the keeper; an unreadable one is left, named on
        // the collector's log; a failed copy fails the collector.
        let each_file = "for f in /output/* /output/.[!.]* /output/..?*; do\n\
             \x20 [ -f \"$f\" ] && [ ! -L \"$f\" ] || continue\n";
        let script = format!(
            "set -eu\n\
             left={limit}\n\
             {each_file}\
             \x20 size=$(stat -c %s \"$f\")\n\
             \x20 if [ \"$size\" -gt \"$left\" ]; then\n\
             \x20   echo \"the output's files take more than its limit of {limit} bytes\" >&2\n\
             \x20   exit {OUTPUT_TOO_LARGE_EXIT}\n\
             \x20 fi\n\
             \x20 left=$((left - size))\n\
             done\n\
             count=0\n\
             {each_file}\
             \x20 if [ \"$count\" -ge {most} ]; then echo \"files past the first {most} are left\" >&2; break; fi\n\
             \x20 if [ ! -r \"$f\" ]; then echo \"an unreadable file is left: ${{f##*/}}\" >&2; continue; fi\n\
             \x20 cp -- \"$f\" /collected/\n\
             \x20 chmod 0644 \"/collected/${{f##*/}}\"\n\
             \x20 count=$((count + 1))\n\
             done\n"
        );
        let container = Container {
            name: "collect".to_owned(),
            image: Some(self.config.helper_image.clone()),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), script]),
            resources: Some(resources(50, 64)),
            volume_mounts: Some(vec![
                mount("output", "/output", Some("output".to_owned()), true),
                mount(
                    "workspace",
                    "/collected",
                    Some(format!("{workspace}/output")),
                    false,
                ),
            ]),
            ..hardened_container()
        };
        let volumes = vec![
            claim_volume("output", &output_claim_name(name), true),
            claim_volume("workspace", &self.config.workspace_claim, false),
        ];
        let pod = self.hardened_pod(
            vec![container],
            volumes,
            self.config.run_as_user,
            placement.group,
            COLLECT_DEADLINE_SECS,
        );
        // Copying is quick; the deadline only bounds a stuck volume.
        self.job(
            &collector_name(name),
            name,
            "collect",
            pod,
            COLLECT_DEADLINE_SECS,
            job,
        )
    }

    /// A NetworkPolicy denying every connection out of the isolation check's probe `name`.
    pub fn canary_policy(&self, name: &str) -> NetworkPolicy {
        let mut policy = self.network_policy(name);
        policy.metadata.labels = Some(self.labels(name, "canary"));
        policy
    }

    /// A probe of the isolation check, running as the jobs' account and `group_id` (the
    /// workspace's group): it tries to reach `target` (or the API server's service when
    /// `None`), and exits with [`PROBE_UNEXPECTED_EXIT`] when it reached it and should
    /// not have, or could not and should have (`expect_reach`). Its pods carry `group` as their
    /// run label: the [`canary_policy`](Self::canary_policy) of that name selects them. With
    /// `marker`, it first reads that file at the root of the workspace claim (mounted
    /// read-only), or exits with [`MARKER_MISSING_EXIT`].
    pub fn canary_job(
        &self,
        name: &str,
        group: &str,
        target: Option<&str>,
        expect_reach: bool,
        marker: Option<&str>,
        group_id: i64,
    ) -> Job {
        let (host, port) = match target.and_then(|target| target.rsplit_once(':')) {
            Some((host, port)) => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port.to_owned(),
            ),
            None => (
                "$KUBERNETES_SERVICE_HOST".to_owned(),
                "$KUBERNETES_SERVICE_PORT".to_owned(),
            ),
        };
        let (reached, unreachable) = if expect_reach {
            (0, PROBE_UNEXPECTED_EXIT)
        } else {
            (PROBE_UNEXPECTED_EXIT, 0)
        };
        let mut script = String::new();
        if let Some(marker) = marker {
            script.push_str(&format!(
                "cat \"/workspace/{marker}\" || exit {MARKER_MISSING_EXIT}\necho\n"
            ));
        }
        // busybox's nc runs the program after `-e` once connected (and has no `-z`).
        script.push_str(&format!(
            "if nc -w 5 \"{host}\" \"{port}\" -e /bin/true </dev/null; then echo reached; exit {reached}; fi\n\
             echo unreachable\n\
             exit {unreachable}\n"
        ));
        let (mounts, volumes) = if marker.is_some() {
            (
                Some(vec![mount("workspace", "/workspace", None, true)]),
                vec![claim_volume(
                    "workspace",
                    &self.config.workspace_claim,
                    true,
                )],
            )
        } else {
            (None, Vec::new())
        };
        let container = Container {
            name: "canary".to_owned(),
            image: Some(self.config.helper_image.clone()),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), script]),
            resources: Some(resources(10, 16)),
            volume_mounts: mounts,
            ..hardened_container()
        };
        let pod = self.hardened_pod(
            vec![container],
            volumes,
            self.config.run_as_user,
            group_id,
            self.config.probe_timeout_secs,
        );
        let labels = self.labels(group, "canary");
        Job {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                completions: Some(1),
                parallelism: Some(1),
                active_deadline_seconds: Some(clamp_i64(self.config.probe_timeout_secs)),
                ttl_seconds_after_finished: Some(self.config.ttl_secs_after_finished),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(pod),
                },
                ..JobSpec::default()
            }),
            status: None,
        }
    }

    fn job(
        &self,
        name: &str,
        run: &str,
        step: &str,
        pod: PodSpec,
        deadline_secs: u64,
        job: &Prepared,
    ) -> Job {
        let mut metadata = self.meta(name, run, step);
        metadata.annotations = Some(BTreeMap::from([
            ("insitu.dev/run-id".to_owned(), job.id.name()),
            (
                "insitu.dev/agreement".to_owned(),
                job.id.agreement.to_string(),
            ),
        ]));
        Job {
            metadata,
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                completions: Some(1),
                parallelism: Some(1),
                active_deadline_seconds: Some(clamp_i64(deadline_secs.max(1))),
                ttl_seconds_after_finished: Some(self.config.ttl_secs_after_finished),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels(run, step)),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(pod),
                },
                ..JobSpec::default()
            }),
            status: None,
        }
    }

    /// A pod spec with the hardening every pod of the backend has; the pod itself ends
    /// `deadline_secs` (plus the grace) after it starts, should its Job be orphaned.
    fn hardened_pod(
        &self,
        containers: Vec<Container>,
        volumes: Vec<Volume>,
        user: i64,
        group: i64,
        deadline_secs: u64,
    ) -> PodSpec {
        PodSpec {
            containers,
            volumes: (!volumes.is_empty()).then_some(volumes),
            restart_policy: Some("Never".to_owned()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            share_process_namespace: Some(false),
            termination_grace_period_seconds: Some(clamp_i64(self.grace_secs)),
            active_deadline_seconds: Some(clamp_i64(
                deadline_secs.saturating_add(self.grace_secs).max(1),
            )),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(user),
                run_as_group: Some(group),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }
    }

    /// The path of `job`'s workspace inside the workspace claim.
    fn workspace_path(&self, job: &Prepared) -> String {
        format!("jobs/{}/{}", job.id.chain_id, job.id.name())
    }
}

/// The name of run `name`'s output claim.
pub fn output_claim_name(name: &str) -> String {
    format!("{name}-output")
}

/// The name of run `name`'s collector Job.
pub fn collector_name(name: &str) -> String {
    format!("{name}-collect")
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

fn mount(volume: &str, path: &str, sub_path: Option<String>, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        sub_path,
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn claim_volume(name: &str, claim: &str, read_only: bool) -> Volume {
    Volume {
        name: name.to_owned(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.to_owned(),
            read_only: Some(read_only),
        }),
        ..Volume::default()
    }
}

/// Requests equal to limits (the pod's QoS class is then Guaranteed).
fn resources(cpu_percent: u32, memory_mb: u64) -> ResourceRequirements {
    let amounts = BTreeMap::from([
        (
            "cpu".to_owned(),
            Quantity(format!("{}m", u64::from(cpu_percent.max(1)) * 10)),
        ),
        (
            "memory".to_owned(),
            Quantity(format!("{}Mi", memory_mb.max(1))),
        ),
    ]);
    ResourceRequirements {
        limits: Some(amounts.clone()),
        requests: Some(amounts),
        claims: None,
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

fn hardened_container() -> Container {
    Container {
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".to_owned()]),
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
