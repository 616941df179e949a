//! The Kubernetes backend against a fake API server: every request it makes is recorded and
//! checked (the exact Job, NetworkPolicy, claim and delete bodies, field by field), and the
//! fake replays what a cluster answers: runs that succeed, fail, run out of memory or time,
//! never start or get evicted, API errors, closed and expired watches.

use std::{path::PathBuf, time::Duration};

use alloy::primitives::B256;
use serde_json::Value;

use super::{KubernetesBackend, StartError, objects, preflight::PERMISSIONS};
use crate::{
    compute::{BackendError, ComputeBackend, Ending, Limits, Outcome, Prepared, RunId, RunState},
    config::{BackendKind, ComputeConfig, KubernetesConfig, ResourcePreset, RuntimeConfig},
};
use insitu_kubefake::{Behaviour, FakeCluster, Recorded};

const NAMESPACE: &str = "insitu-jobs";
const CLAIM: &str = "insitu-work";
const HELPER: &str = "registry.example/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const PYTHON: &str = "registry.example/python@sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// A keeper's work root (the claim's files as the fake sees them) and its configuration.
struct Setup {
    _root: tempfile::TempDir,
    config: ComputeConfig,
    cluster: FakeCluster,
}

/// Makes `folder` belong to a group other than root's, inherited by what is made in it (the
/// keeper refuses to share root's group with its jobs; tests may run as root).
pub(crate) fn give_group(folder: &std::path::Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if std::fs::metadata(folder).unwrap().gid() == 0 {
        std::os::unix::fs::chown(folder, None, Some(4242)).unwrap();
    }
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o2775)).unwrap();
}

fn config_in(work_root: PathBuf) -> ComputeConfig {
    let mut kubernetes = KubernetesConfig::new(NAMESPACE, CLAIM, HELPER);
    kubernetes.output_storage_class = Some("fast-ssd".into());
    kubernetes.ttl_secs_after_finished = 900;
    ComputeConfig {
        backend: BackendKind::Kubernetes,
        work_root,
        grace_secs: 7,
        runtimes: vec![RuntimeConfig {
            name: "python3".into(),
            command: vec!["/usr/bin/python3".into(), "-I".into()],
            description: String::new(),
            image: Some(PYTHON.into()),
            flower: None,
        }],
        kubernetes: Some(kubernetes),
        ..ComputeConfig::default()
    }
}

/// A cluster whose runs behave as `run`, whose collectors as `collect`, and whose isolation
/// probes as a working network plugin makes them.
fn setup(run: Behaviour, collect: Behaviour) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let work_root = root.path().join("compute");
    std::fs::create_dir_all(&work_root).unwrap();
    give_group(&work_root);
    std::fs::create_dir_all(work_root.join("jobs")).unwrap();
    let config = config_in(work_root.clone());
    let cluster = FakeCluster::new(NAMESPACE, CLAIM, work_root, move |job: &Value| {
        let name = job["metadata"]["name"].as_str().unwrap_or_default();
        match job["metadata"]["labels"][objects::STEP_LABEL].as_str() {
            Some("canary") => Behaviour::Probe {
                reaches: name.ends_with("-control"),
                unexpected: objects::PROBE_UNEXPECTED_EXIT,
                marker_missing: objects::MARKER_MISSING_EXIT,
            },
            Some("collect") => collect.clone(),
            _ => run.clone(),
        }
    });
    Setup {
        _root: root,
        config,
        cluster,
    }
}

fn succeeding() -> Setup {
    setup(
        Behaviour::Exit {
            code: 0,
            log: "hello from the job\n".into(),
            files: Vec::new(),
        },
        collector_copies(),
    )
}

fn collector_copies() -> Behaviour {
    Behaviour::Exit {
        code: 0,
        log: String::new(),
        files: vec![("result.csv".into(), b"mean,4.5\n".to_vec())],
    }
}

async fn started(setup: &Setup) -> KubernetesBackend {
    KubernetesBackend::with_client(setup.cluster.client(), &setup.config)
        .await
        .expect("the backend starts on a healthy cluster")
}

fn limits() -> Limits {
    Limits {
        wall_secs: 120,
        memory_mb: 256,
        cpu_percent: 50,
        pids: 64,
        output_mb: 8,
        tmp_mb: 16,
        log_kb: 4,
    }
}

/// A prepared job, its workspace staged in the work root.
fn prepared(config: &ComputeConfig, run: u32) -> Prepared {
    let id = RunId {
        chain_id: 31337,
        agreement: B256::repeat_byte(0xab),
        run,
    };
    let workspace = config.work_root.join("jobs").join("31337").join(id.name());
    for folder in ["input", "algorithm", "output"] {
        std::fs::create_dir_all(workspace.join(folder)).unwrap();
    }
    std::fs::write(workspace.join("input/data.csv"), "x\n4\n5\n").unwrap();
    std::fs::write(workspace.join("algorithm/main"), "print('hi')\n").unwrap();
    Prepared {
        id,
        runtime: "python3".into(),
        workspace,
        command: vec![
            "/usr/bin/python3".into(),
            "-I".into(),
            "/algorithm/main".into(),
        ],
        env: vec![("INSITU_INPUTS".into(), "/data".into())],
        limits: limits(),
        mounts: Vec::new(),
        egress: None,
    }
}

async fn ended(backend: &KubernetesBackend, id: &RunId) -> Outcome {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match backend.status(id).await {
            RunState::Ended(outcome) => return outcome,
            RunState::Unknown => panic!("the backend forgot run {}", id.name()),
            RunState::Running => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {} did not end",
            id.name()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `condition` holds (the fake removes a Job a little after its foreground
/// deletion), at most 10 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `cluster` has an object `name` of `resource`.
async fn exists(cluster: &FakeCluster, resource: &str, name: &str) {
    eventually(&format!("{resource} {name} exists"), || {
        cluster.object(resource, name).is_some()
    })
    .await;
}

fn created(cluster: &FakeCluster, resource: &str) -> Vec<Value> {
    cluster
        .requests_to("POST", resource)
        .into_iter()
        .map(|request| request.body)
        .collect()
}

fn job_named<'a>(jobs: &'a [Value], name: &str) -> &'a Value {
    jobs.iter()
        .find(|job| job["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no job {name} was created"))
}

/// Checks the hardening every pod of the backend has, field by field.
fn assert_hardened(job: &Value, deadline: i64) {
    let name = &job["metadata"]["name"];
    let spec = &job["spec"];
    assert_eq!(spec["backoffLimit"], 0, "{name}: retries");
    assert_eq!(spec["activeDeadlineSeconds"], deadline, "{name}: deadline");
    assert_eq!(spec["ttlSecondsAfterFinished"], 900, "{name}: TTL");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never", "{name}");
    assert_eq!(
        pod["terminationGracePeriodSeconds"], 7,
        "{name}: the keeper's grace"
    );
    assert_eq!(
        pod["activeDeadlineSeconds"],
        deadline + 7,
        "{name}: an orphaned pod ends too"
    );
    assert_eq!(pod["automountServiceAccountToken"], false, "{name}: token");
    assert_eq!(pod["enableServiceLinks"], false, "{name}: service links");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_eq!(pod[host], false, "{name}: {host}");
    }
    let context = &pod["securityContext"];
    assert_eq!(context["runAsNonRoot"], true, "{name}");
    assert_eq!(context["runAsUser"], 65534, "{name}: account");
    assert_eq!(
        context["seccompProfile"]["type"], "RuntimeDefault",
        "{name}"
    );
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        assert!(volume["hostPath"].is_null(), "{name}: host path volume");
    }
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{name}: one container");
    assert!(pod["initContainers"].is_null(), "{name}");
    for container in containers {
        let image = container["image"].as_str().unwrap();
        assert!(
            image.contains("@sha256:"),
            "{name}: image {image} by digest"
        );
        let context = &container["securityContext"];
        assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(context["privileged"], false, "{name}");
        assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(context["runAsNonRoot"], true, "{name}");
        assert_eq!(
            context["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert!(context["capabilities"]["add"].is_null(), "{name}");
        assert_eq!(
            context["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        let resources = &container["resources"];
        assert!(resources["limits"].is_object(), "{name}: limits");
        assert_eq!(
            resources["limits"], resources["requests"],
            "{name}: limits = requests"
        );
        assert!(container["ports"].is_null(), "{name}: no ports");
    }
}

fn mount<'a>(container: &'a Value, path: &str) -> &'a Value {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|mount| mount["mountPath"] == path)
        .unwrap_or_else(|| panic!("no mount at {path}"))
}

fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|volume| volume["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// Checks a deny-all NetworkPolicy for the pods labelled `run`.
fn assert_denies_all(policy: &Value, run: &str) {
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"][objects::RUN_LABEL],
        run
    );
    assert!(policy["spec"]["podSelector"]["matchLabels"][objects::KEEPER_LABEL].is_string());
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(policy["spec"]["egress"], serde_json::json!([]));
    assert_eq!(policy["spec"]["ingress"], serde_json::json!([]));
}

fn deletes_of(cluster: &FakeCluster, resource: &str) -> Vec<Recorded> {
    cluster
        .requests()
        .into_iter()
        .filter(|request| {
            request.method == "DELETE" && request.path.split('/').any(|segment| segment == resource)
        })
        .collect()
}

#[tokio::test]
async fn kubernetes_start_checks_the_cluster_and_sweeps_what_an_earlier_keeper_left() {
    let setup = succeeding();
    // Left by this keeper before a crash, and by another keeper sharing the namespace.
    let backend_labels = |instance: &str| serde_json::json!({objects::KEEPER_LABEL: instance, objects::RUN_LABEL: "insitu-old"});
    let instance = super::instance_of(
        setup.config.kubernetes.as_ref().unwrap(),
        &setup.config.work_root,
    );
    setup.cluster.put(
        "jobs",
        serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "insitu-old", "namespace": NAMESPACE, "labels": backend_labels(&instance)}}),
    );
    setup.cluster.put(
        "jobs",
        serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "theirs", "namespace": NAMESPACE, "labels": backend_labels("0123456789ab")}}),
    );
    let backend = started(&setup).await;
    assert_eq!(backend.name(), "kubernetes");
    let cluster = &setup.cluster;

    assert_eq!(cluster.requests()[0].path, "/version");
    let reviews = created(cluster, "/selfsubjectaccessreviews");
    assert_eq!(reviews.len(), PERMISSIONS.len());
    for (group, resource, verb) in PERMISSIONS {
        let (resource, subresource) = resource
            .split_once('/')
            .map_or((*resource, None), |(r, s)| (r, Some(s)));
        assert!(
            reviews.iter().any(|review| {
                let attributes = &review["spec"]["resourceAttributes"];
                attributes["namespace"] == NAMESPACE
                    && attributes["group"] == *group
                    && attributes["resource"] == resource
                    && attributes["subresource"].as_str() == subresource
                    && attributes["verb"] == *verb
            }),
            "no review of {verb} {resource}"
        );
    }
    assert_eq!(
        cluster
            .requests_to("GET", &format!("/persistentvolumeclaims/{CLAIM}"))
            .len(),
        1
    );

    // The probes: a deny-all policy made before the isolated probe, a control probe without
    // one that reads the keeper's marker from the claim, read-only.
    let policies = created(cluster, "/networkpolicies");
    assert_eq!(policies.len(), 1);
    let group = policies[0]["metadata"]["name"].as_str().unwrap().to_owned();
    assert_denies_all(&policies[0], &group);
    let jobs = created(cluster, "/jobs");
    let isolated = job_named(&jobs, &format!("{group}-isolated"));
    let control = job_named(&jobs, &format!("{group}-control"));
    assert_hardened(isolated, 180);
    assert_hardened(control, 180);
    let labels =
        |job: &Value| job["spec"]["template"]["metadata"]["labels"][objects::RUN_LABEL].clone();
    assert_eq!(
        labels(isolated),
        group.as_str(),
        "the policy selects the isolated probe"
    );
    assert_ne!(
        labels(control),
        group.as_str(),
        "the policy leaves the control probe"
    );
    let script = |job: &Value| {
        job["spec"]["template"]["spec"]["containers"][0]["command"][2]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(script(isolated).contains("$KUBERNETES_SERVICE_HOST"));
    assert!(script(control).contains("/workspace/.insitu-probe-"));
    let control_pod = &control["spec"]["template"]["spec"];
    assert_eq!(
        volume(control_pod, "workspace")["persistentVolumeClaim"]["readOnly"],
        true
    );
    assert_eq!(
        mount(&control_pod["containers"][0], "/workspace")["readOnly"],
        true
    );
    assert!(
        isolated["spec"]["template"]["spec"]["volumes"].is_null(),
        "the isolated probe mounts nothing"
    );
    let marker_left = std::fs::read_dir(&setup.config.work_root)
        .unwrap()
        .flatten()
        .any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(".insitu-probe-")
        });
    assert!(!marker_left, "the marker is removed");

    // The probes are deleted in the foreground, with their policy.
    for probe in ["isolated", "control"] {
        let deleted = cluster.requests_to("DELETE", &format!("/jobs/{group}-{probe}"));
        assert_eq!(deleted.len(), 1, "{probe} deleted");
        assert_eq!(deleted[0].body["propagationPolicy"], "Foreground");
    }
    assert_eq!(
        cluster
            .requests_to("DELETE", &format!("/networkpolicies/{group}"))
            .len(),
        1
    );

    // The sweep deletes this keeper's leftovers only.
    let selector = format!("{}={instance}", objects::KEEPER_LABEL);
    for resource in ["jobs", "persistentvolumeclaims", "networkpolicies"] {
        let sweeps: Vec<_> = deletes_of(cluster, resource)
            .into_iter()
            .filter(|request| request.query.get("labelSelector") == Some(&selector))
            .collect();
        assert_eq!(sweeps.len(), 1, "{resource} swept by label");
    }
    let sweep = deletes_of(cluster, "jobs")
        .into_iter()
        .find(|request| request.query.contains_key("labelSelector"))
        .unwrap();
    assert_eq!(sweep.body["propagationPolicy"], "Foreground");
    assert_eq!(cluster.names("jobs"), vec!["theirs".to_owned()]);
    assert!(cluster.names("networkpolicies").is_empty());
}

#[tokio::test]
async fn kubernetes_start_refuses_a_cluster_that_cannot_isolate_jobs() {
    type Break = fn(&FakeCluster);
    let cases: [(Break, &str); 9] = [
        (
            |c| c.fail("GET", "/version", 503, 1),
            "cannot reach the cluster's API",
        ),
        (
            |c| {
                c.deny("", "pods/log", "get");
                c.deny("batch", "jobs", "deletecollection");
            },
            "may not deletecollection jobs.batch, get pods/log in namespace insitu-jobs",
        ),
        (
            |c| {
                for (group, resource, verb) in PERMISSIONS {
                    c.deny(group, resource, verb);
                }
            },
            "none of its permissions in namespace insitu-jobs: check that the namespace exists",
        ),
        (
            |c| c.without_namespace(),
            "does not exist in namespace insitu-jobs",
        ),
        (
            |c| c.claim_phase(CLAIM, "Pending"),
            "is \"Pending\", not Bound",
        ),
        (
            |c| c.without_network_policy(),
            "does not enforce NetworkPolicy",
        ),
        (|c| c.target_unreachable(), "inconclusive"),
        (
            |c| c.fail("POST", "/networkpolicies", 403, 1),
            "cannot start the isolation check",
        ),
        (
            |c| c.fail("POST", "/jobs", 500, 1),
            "cannot start the isolation check",
        ),
    ];
    for (breaks, expected) in cases {
        let setup = succeeding();
        breaks(&setup.cluster);
        let error = KubernetesBackend::with_client(setup.cluster.client(), &setup.config)
            .await
            .expect_err(expected);
        assert!(
            matches!(error, StartError::Preflight(_)),
            "{error:?} should be a failed check"
        );
        assert!(
            error.to_string().contains(expected),
            "{error} should say {expected}"
        );
        // Whatever the check made is gone (Jobs once their pods are), and no run was made.
        eventually(&format!("{expected}: no probe left"), || {
            setup.cluster.names("jobs").is_empty()
        })
        .await;
        assert!(
            setup.cluster.names("networkpolicies").is_empty(),
            "{expected}: policy left"
        );
        assert!(
            setup
                .cluster
                .requests_to("DELETE", "/jobs")
                .iter()
                .all(|request| !request.query.contains_key("labelSelector")),
            "{expected}: no sweep before the check passes"
        );
    }
}

#[tokio::test]
async fn kubernetes_start_refuses_when_the_claim_is_not_the_keepers_work_root() {
    let setup = succeeding();
    // The fake's claim is another folder than the keeper's work root.
    let elsewhere = tempfile::tempdir().unwrap();
    give_group(elsewhere.path());
    let mut config = setup.config.clone();
    config.work_root = elsewhere.path().to_path_buf();
    let error = KubernetesBackend::with_client(setup.cluster.client(), &config)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("work_root must be the mount of that claim"),
        "{error}"
    );
}

#[tokio::test]
async fn kubernetes_run_is_a_hardened_job_and_its_output_is_collected() {
    let setup = succeeding();
    let backend = started(&setup).await;
    let cluster = &setup.cluster;
    let before = cluster.requests().len();
    let job = prepared(&setup.config, 1);
    let name = backend.object_name(&job.id);
    backend.submit(job.clone()).await.unwrap();
    let outcome = ended(&backend, &job.id).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.wall_ms, 3000, "from the container's start and end");
    assert_eq!(outcome.output_bytes, 9);
    assert_eq!(
        std::fs::read(job.output().join("result.csv")).unwrap(),
        b"mean,4.5\n"
    );
    assert_eq!(
        std::fs::read_to_string(job.log()).unwrap(),
        "hello from the job\n"
    );
    assert_eq!(
        backend.logs(&job.id).await.unwrap(),
        b"hello from the job\n"
    );

    // In order: the policy, the output claim, the run's Job; the collector once it completed.
    let made: Vec<_> = cluster.requests()[before..]
        .iter()
        .filter(|request| request.method == "POST")
        .map(|request| {
            request.body["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        made,
        [
            name.clone(),
            format!("{name}-output"),
            name.clone(),
            format!("{name}-collect")
        ]
    );
    let policy = created(cluster, "/networkpolicies").pop().unwrap();
    assert_denies_all(&policy, &name);

    let claim = created(cluster, "/persistentvolumeclaims").pop().unwrap();
    assert_eq!(claim["spec"]["storageClassName"], "fast-ssd");
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "8Mi");

    let jobs = created(cluster, "/jobs");
    let run = job_named(&jobs, &name);
    assert_hardened(run, 120);
    assert_eq!(
        run["metadata"]["annotations"]["insitu.dev/run-id"],
        job.id.name()
    );
    assert_eq!(
        run["metadata"]["annotations"]["insitu.dev/agreement"],
        job.id.agreement.to_string()
    );
    let pod = &run["spec"]["template"]["spec"];
    let group = i64::from(std::os::unix::fs::MetadataExt::gid(
        &std::fs::metadata(&job.workspace).unwrap(),
    ));
    assert_ne!(group, 0);
    assert_eq!(pod["securityContext"]["runAsGroup"], group);
    // The output claim's root is made writable by the run's group, and only in the run's pod.
    assert_eq!(pod["securityContext"]["fsGroup"], group);
    assert_eq!(
        pod["securityContext"]["fsGroupChangePolicy"],
        "OnRootMismatch"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "algorithm");
    assert_eq!(container["image"], PYTHON);
    assert_eq!(
        container["command"],
        serde_json::json!(["/usr/bin/python3", "-I", "/algorithm/main"])
    );
    assert_eq!(container["resources"]["limits"]["cpu"], "500m");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    let env: Vec<_> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| {
            (
                var["name"].as_str().unwrap(),
                var["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(env.contains(&("INSITU_INPUTS", "/data")));
    assert!(env.contains(&("HOME", "/tmp")));
    // The data: read-only at the volume and at each mount.
    let workspace = volume(pod, "workspace");
    assert_eq!(workspace["persistentVolumeClaim"]["claimName"], CLAIM);
    assert_eq!(workspace["persistentVolumeClaim"]["readOnly"], true);
    let subpath = format!("jobs/31337/{}", job.id.name());
    for (path, folder) in [("/data", "input"), ("/algorithm", "algorithm")] {
        let mount = mount(container, path);
        assert_eq!(mount["name"], "workspace");
        assert_eq!(mount["readOnly"], true, "{path}");
        assert_eq!(mount["subPath"], format!("{subpath}/{folder}"));
    }
    // The output: the run's own claim, through a sub-path.
    let output = volume(pod, "output");
    assert_eq!(
        output["persistentVolumeClaim"]["claimName"],
        format!("{name}-output")
    );
    assert_eq!(output["persistentVolumeClaim"]["readOnly"], false);
    assert_eq!(mount(container, "/output")["subPath"], "output");
    assert_eq!(mount(container, "/output")["readOnly"], false);
    // /tmp: in memory, size-limited.
    let tmp = volume(pod, "tmp");
    assert_eq!(tmp["emptyDir"]["medium"], "Memory");
    assert_eq!(tmp["emptyDir"]["sizeLimit"], "16Mi");
    assert_eq!(pod["volumes"].as_array().unwrap().len(), 3);

    // The collector: the output claim read-only, the workspace's output folder writable.
    let collector = job_named(&jobs, &format!("{name}-collect"));
    assert_hardened(collector, 600);
    let pod = &collector["spec"]["template"]["spec"];
    assert!(
        pod["securityContext"]["fsGroup"].is_null(),
        "the shared claim is never re-owned"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], HELPER);
    assert_eq!(
        volume(pod, "output")["persistentVolumeClaim"]["readOnly"],
        true
    );
    assert_eq!(mount(container, "/output")["readOnly"], true);
    assert_eq!(
        mount(container, "/collected")["subPath"],
        format!("{subpath}/output")
    );
    let script = container["command"][2].as_str().unwrap();
    assert!(
        script.contains("left=8388608"),
        "the output limit in bytes: {script}"
    );
    assert!(
        script.contains("stat -c %s"),
        "files' lengths, not blocks: {script}"
    );
    assert!(
        script.contains("[ ! -L \"$f\" ]"),
        "regular files only: {script}"
    );
    assert!(
        script.contains("chmod 0644"),
        "readable by the keeper: {script}"
    );

    // Collecting deletes every object of the run, Jobs in the foreground.
    backend.collect(&job.id).await.unwrap();
    for job in [name.clone(), format!("{name}-collect")] {
        let deleted = cluster.requests_to("DELETE", &format!("/jobs/{job}"));
        assert_eq!(deleted.len(), 1, "{job}");
        assert_eq!(deleted[0].body["propagationPolicy"], "Foreground");
    }
    assert_eq!(
        cluster
            .requests_to("DELETE", &format!("/persistentvolumeclaims/{name}-output"))
            .len(),
        1
    );
    assert_eq!(
        cluster
            .requests_to("DELETE", &format!("/networkpolicies/{name}"))
            .len(),
        1
    );
    // The pods go (an orphan included) before the policy that isolates them.
    let order: Vec<String> = cluster
        .requests()
        .into_iter()
        .filter(|request| request.method == "DELETE")
        .map(|request| {
            let selector = request
                .query
                .get("labelSelector")
                .cloned()
                .unwrap_or_default();
            format!("{}?{selector}", request.path)
        })
        .collect();
    let pods = order
        .iter()
        .position(|request| request.ends_with(&format!("/pods?{}={name}", objects::RUN_LABEL)))
        .expect("the run's pods deleted by label");
    let policy = order
        .iter()
        .position(|request| request.ends_with(&format!("/networkpolicies/{name}?")))
        .unwrap();
    assert!(pods < policy, "{order:?}");
    eventually("no job left", || cluster.names("jobs").is_empty()).await;
    assert!(
        cluster.names("pods").is_empty(),
        "the Job's pods went with it"
    );
    assert!(cluster.names("networkpolicies").is_empty());
    assert_eq!(
        cluster.names("persistentvolumeclaims"),
        vec![CLAIM.to_owned()]
    );
    assert_eq!(backend.status(&job.id).await, RunState::Unknown);
    assert!(matches!(
        backend.collect(&job.id).await,
        Err(BackendError::Unknown(_))
    ));
}

#[tokio::test]
async fn kubernetes_endings_are_read_from_the_job_and_its_pod() {
    let failing = Behaviour::Exit {
        code: 3,
        log: "Traceback: KeyError\n".into(),
        files: Vec::new(),
    };
    let too_large = Behaviour::Exit {
        code: objects::OUTPUT_TOO_LARGE_EXIT,
        log: String::new(),
        files: Vec::new(),
    };
    let cases = [
        (failing, collector_copies(), Ending::Failed, Some(3)),
        (
            Behaviour::OutOfMemory,
            collector_copies(),
            Ending::OutOfMemory,
            Some(137),
        ),
        (
            // The cluster deletes the pod of a Job past its deadline before it reports the
            // end: the keeper saw it run, and followed its logs.
            Behaviour::Deadline,
            collector_copies(),
            Ending::TimedOut,
            None,
        ),
        (
            Behaviour::NeverStarts,
            collector_copies(),
            Ending::SandboxFailed,
            None,
        ),
        (
            Behaviour::Evicted,
            collector_copies(),
            Ending::SandboxFailed,
            Some(137),
        ),
        (
            Behaviour::Exit {
                code: 0,
                log: String::new(),
                files: Vec::new(),
            },
            too_large,
            Ending::OutputTooLarge,
            Some(0),
        ),
    ];
    for (run, collect, expected, exit_code) in cases {
        let setup = setup(run.clone(), collect);
        let backend = started(&setup).await;
        let job = prepared(&setup.config, 1);
        backend.submit(job.clone()).await.unwrap();
        let outcome = ended(&backend, &job.id).await;
        assert_eq!(outcome.ending, expected, "{run:?}: {outcome:?}");
        assert_eq!(outcome.exit_code, exit_code, "{run:?}");
        assert_eq!(outcome.output_bytes, 0, "{run:?}: nothing collected");
        if exit_code == Some(137) {
            assert_eq!(outcome.signal, Some(9), "{run:?}: SIGKILL");
        }
        let log = std::fs::read_to_string(job.log()).unwrap();
        match run {
            Behaviour::Deadline => assert_eq!(log, "still working\n"),
            Behaviour::OutOfMemory => assert_eq!(log, "allocating\n"),
            Behaviour::Exit { code: 3, .. } => assert_eq!(log, "Traceback: KeyError\n"),
            _ => {}
        }
        if expected != Ending::OutputTooLarge {
            assert!(
                setup.cluster.requests_to("POST", "/jobs").iter().all(
                    |request| request.body["metadata"]["labels"][objects::STEP_LABEL] != "collect"
                ),
                "{run:?}: no collector for a failed run"
            );
        }
        backend.collect(&job.id).await.unwrap();
    }
}

#[tokio::test]
async fn kubernetes_stop_deletes_the_job_in_the_foreground() {
    // Stopped while the algorithm runs, then while its output is being collected.
    let cases = [
        (Behaviour::Hangs, collector_copies(), ""),
        (
            Behaviour::Exit {
                code: 0,
                log: String::new(),
                files: Vec::new(),
            },
            Behaviour::Hangs,
            "-collect",
        ),
    ];
    for (run, collect, stopped) in cases {
        let setup = setup(run, collect);
        let backend = started(&setup).await;
        let job = prepared(&setup.config, 1);
        let name = backend.object_name(&job.id);
        backend.submit(job.clone()).await.unwrap();
        let target = format!("{name}{stopped}");
        exists(&setup.cluster, "jobs", &target).await;
        assert_eq!(backend.status(&job.id).await, RunState::Running);
        backend.stop(&job.id).await;
        let outcome = ended(&backend, &job.id).await;
        assert_eq!(outcome.ending, Ending::Stopped, "{target}");
        assert_eq!(outcome.output_bytes, 0);
        let deleted = setup
            .cluster
            .requests_to("DELETE", &format!("/jobs/{target}"));
        assert_eq!(deleted.len(), 1, "{target}");
        assert_eq!(deleted[0].body["propagationPolicy"], "Foreground");
        assert_eq!(
            deleted[0].body["gracePeriodSeconds"], 7,
            "the keeper's grace"
        );
        let collectors = setup
            .cluster
            .requests_to("POST", "/jobs")
            .iter()
            .filter(|request| request.body["metadata"]["name"] == format!("{name}-collect"))
            .count();
        assert_eq!(collectors, usize::from(!stopped.is_empty()), "{target}");
        assert!(
            std::fs::read_dir(job.output()).unwrap().next().is_none(),
            "nothing collected"
        );
        backend.collect(&job.id).await.unwrap();
    }
}

#[tokio::test]
async fn kubernetes_a_job_deleted_by_someone_else_is_a_failure() {
    let setup = setup(Behaviour::Hangs, collector_copies());
    let backend = started(&setup).await;
    let job = prepared(&setup.config, 1);
    let name = backend.object_name(&job.id);
    backend.submit(job.clone()).await.unwrap();
    exists(&setup.cluster, "pods", &format!("{name}-x7k2p")).await;
    let client = setup.cluster.client();
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> =
        kube::Api::namespaced(client, NAMESPACE);
    jobs.delete(&name, &kube::api::DeleteParams::background())
        .await
        .unwrap();
    let outcome = ended(&backend, &job.id).await;
    assert_eq!(outcome.ending, Ending::SandboxFailed);
}

#[tokio::test]
async fn kubernetes_watch_restarts_and_api_errors_do_not_lose_the_end() {
    let setup = setup(Behaviour::Hangs, collector_copies());
    let backend = started(&setup).await;
    let cluster = &setup.cluster;
    let job = prepared(&setup.config, 1);
    let name = backend.object_name(&job.id);
    // The first list of the run's Job fails; the watcher lists again after its backoff.
    cluster.fail("GET", &format!("metadata.name%3D{name}"), 500, 1);
    backend.submit(job.clone()).await.unwrap();
    let watching = || async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while cluster.open_watches() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no watch opened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    watching().await;
    // The server ends the watch (as at its timeout): the watcher watches again.
    cluster.close_watches();
    watching().await;
    // The server says the watch's version expired: the watcher lists again, then watches.
    cluster.expire_watches();
    watching().await;
    assert_eq!(backend.status(&job.id).await, RunState::Running);
    // The Job completes while no event reaches the watch; its version then expires: the next
    // list finds the Job complete.
    let mut done = cluster.object("jobs", &name).unwrap();
    done["status"] = serde_json::json!({"conditions": [{"type": "Complete", "status": "True"}]});
    cluster.put("jobs", done);
    cluster.expire_watches();
    let outcome = ended(&backend, &job.id).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{outcome:?}");
    let lists = cluster
        .requests()
        .into_iter()
        .filter(|request| {
            request.method == "GET"
                && request.path.ends_with("/jobs")
                && request.query.get("fieldSelector") == Some(&format!("metadata.name={name}"))
        })
        .collect::<Vec<_>>();
    let watches = lists.iter().filter(|request| request.is_watch()).count();
    let relists = lists.len() - watches;
    assert!(
        relists >= 4,
        "listed {relists} times: after the error and each expiry"
    );
    assert!(watches >= 3, "watched {watches} times");
    backend.collect(&job.id).await.unwrap();
}

#[tokio::test]
async fn kubernetes_a_refused_run_leaves_nothing_behind() {
    let setup = succeeding();
    let backend = started(&setup).await;
    let cluster = &setup.cluster;
    let job = prepared(&setup.config, 1);
    let name = backend.object_name(&job.id);
    cluster.fail("POST", "/jobs", 422, 1);
    let error = backend.submit(job.clone()).await.unwrap_err();
    assert!(matches!(error, BackendError::Start(_)), "{error:?}");
    assert!(
        error.to_string().contains("the cluster refused the run"),
        "{error}"
    );
    assert!(cluster.object("networkpolicies", &name).is_none());
    assert!(
        cluster
            .object("persistentvolumeclaims", &format!("{name}-output"))
            .is_none()
    );
    assert_eq!(backend.status(&job.id).await, RunState::Unknown);

    // A runtime without an image, or a run no preset holds, is refused before any request.
    let before = cluster.requests().len();
    let mut other = prepared(&setup.config, 2);
    other.runtime = "ruby".into();
    let error = backend.submit(other).await.unwrap_err();
    assert!(
        error.to_string().contains("runtime ruby has no image"),
        "{error}"
    );
    assert_eq!(cluster.requests().len(), before);
}

#[tokio::test]
async fn kubernetes_logs_are_capped_at_the_policy_limit() {
    let long = "x".repeat(10_000);
    let setup = setup(
        Behaviour::Exit {
            code: 0,
            log: long,
            files: Vec::new(),
        },
        collector_copies(),
    );
    let backend = started(&setup).await;
    let job = prepared(&setup.config, 1);
    let name = backend.object_name(&job.id);
    backend.submit(job.clone()).await.unwrap();
    let outcome = ended(&backend, &job.id).await;
    assert!(outcome.log_truncated);
    assert_eq!(outcome.log_bytes, 4096);
    let log = std::fs::read_to_string(job.log()).unwrap();
    assert!(log.starts_with(&"x".repeat(4096)));
    assert!(
        log.ends_with("[insitu: logs past 4096 bytes were dropped]\n"),
        "{log}"
    );
    let reads = setup
        .cluster
        .requests_to("GET", &format!("/pods/{name}-x7k2p/log"));
    assert!(!reads.is_empty());
    assert_eq!(
        reads[0].query.get("container").map(String::as_str),
        Some("algorithm")
    );
    assert_eq!(
        reads[0].query.get("limitBytes").map(String::as_str),
        Some("4097")
    );
    backend.collect(&job.id).await.unwrap();
}

#[tokio::test]
async fn kubernetes_presets_place_runs_by_their_size() {
    let mut setup = succeeding();
    let kubernetes = setup.config.kubernetes.as_mut().unwrap();
    kubernetes.presets = vec![
        ResourcePreset {
            name: "large".into(),
            cpu_percent: 800,
            memory_mb: 32768,
            node_selector: [("node.example/size".to_owned(), "large".to_owned())].into(),
        },
        ResourcePreset {
            name: "small".into(),
            cpu_percent: 100,
            memory_mb: 1024,
            node_selector: [("node.example/size".to_owned(), "small".to_owned())].into(),
        },
    ];
    let backend = started(&setup).await;
    let mut job = prepared(&setup.config, 1);
    backend.submit(job.clone()).await.unwrap();
    ended(&backend, &job.id).await;
    backend.collect(&job.id).await.unwrap();
    let run = created(&setup.cluster, "/jobs")
        .into_iter()
        .find(|created| created["metadata"]["labels"][objects::STEP_LABEL] == "run")
        .unwrap();
    assert_eq!(
        run["spec"]["template"]["spec"]["nodeSelector"],
        serde_json::json!({"node.example/size": "small"})
    );

    job = prepared(&setup.config, 2);
    job.limits.memory_mb = 65536;
    let error = backend.submit(job).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no resource preset holds 50% CPU and 65536 MiB"),
        "{error}"
    );
}

/// The role in the repository grants every permission the backend checks, and no wildcard.
#[test]
fn kubernetes_rbac_manifest_grants_what_the_backend_uses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes/keeper-rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = documents
        .iter()
        .find(|document| document["kind"] == "Role")
        .expect("a Role");
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(role.clone()).unwrap();
    let rules = role.rules.unwrap_or_default();
    for (group, resource, verb) in PERMISSIONS {
        assert!(
            rules.iter().any(|rule| {
                rule.api_groups
                    .as_ref()
                    .is_some_and(|groups| groups.iter().any(|g| g == group))
                    && rule
                        .resources
                        .as_ref()
                        .is_some_and(|resources| resources.iter().any(|r| r == resource))
                    && rule.verbs.iter().any(|v| v == verb)
            }),
            "the role does not grant {verb} {resource} ({group})"
        );
    }
    for rule in &rules {
        assert!(!rule.verbs.iter().any(|verb| verb == "*"), "wildcard verb");
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                assert_ne!(resource, "*", "wildcard resource");
                for verb in &rule.verbs {
                    let used = PERMISSIONS.iter().any(|permission| {
                        *permission == (group.as_str(), resource.as_str(), verb.as_str())
                    });
                    assert!(
                        used,
                        "the role grants {verb} {resource} ({group}), which the backend does not use"
                    );
                }
            }
        }
    }
    let binding = documents
        .iter()
        .find(|document| document["kind"] == "RoleBinding")
        .expect("a RoleBinding");
    assert_eq!(binding["roleRef"]["name"], role.metadata.name.unwrap());
    assert!(
        documents
            .iter()
            .all(|document| document["kind"] != "ClusterRole"),
        "the keeper needs no cluster-wide permission"
    );
}

#[test]
fn kubernetes_jobs_never_share_roots_group() {
    let refused = super::shared_group(0).unwrap_err();
    assert!(refused.contains("group 0"), "{refused}");
    assert_eq!(super::shared_group(10001), Ok(10001));
}

#[test]
fn kubernetes_settings_are_checked() {
    let root = tempfile::tempdir().unwrap();
    config_in(root.path().to_path_buf()).validate().unwrap();
    type Change = fn(&mut ComputeConfig);
    let cases: [(Change, &str); 11] = [
        (
            |c| c.kubernetes = None,
            "needs a [compute.kubernetes] table",
        ),
        (|c| c.runtimes[0].image = None, "needs its image"),
        (
            |c| c.runtimes[0].image = Some("python:3.13".into()),
            "pinned by digest",
        ),
        (
            |c| c.kubernetes.as_mut().unwrap().helper_image = "busybox:latest".into(),
            "helper_image",
        ),
        (
            |c| c.kubernetes.as_mut().unwrap().namespace = "Jobs".into(),
            "namespace",
        ),
        (
            |c| c.kubernetes.as_mut().unwrap().workspace_claim = "-bad".into(),
            "workspace_claim",
        ),
        (
            |c| c.kubernetes.as_mut().unwrap().run_as_user = 0,
            "non-root",
        ),
        (
            |c| c.kubernetes.as_mut().unwrap().canary_target = Some("10.0.0.1".into()),
            "host:port",
        ),
        (
            |c| c.kubernetes.as_mut().unwrap().probe_timeout_secs = 1,
            "probe_timeout_secs",
        ),
        (
            |c| c.kubernetes.as_mut().unwrap().ttl_secs_after_finished = 0,
            "at least 300",
        ),
        (
            |c| {
                c.kubernetes.as_mut().unwrap().presets = vec![ResourcePreset {
                    name: "none".into(),
                    cpu_percent: 0,
                    memory_mb: 1,
                    node_selector: Default::default(),
                }];
            },
            "above 0",
        ),
    ];
    for (change, expected) in cases {
        let mut config = config_in(root.path().to_path_buf());
        change(&mut config);
        let error = config.validate().unwrap_err();
        assert!(error.contains(expected), "{error} should say {expected}");
    }
    // The local backend ignores the images and the table.
    let mut local = config_in(root.path().to_path_buf());
    local.backend = BackendKind::Local;
    local.runtimes[0].image = None;
    local.validate().unwrap();
    // The table reads from TOML with its defaults.
    let parsed: ComputeConfig = toml::from_str(&format!(
        "backend = \"kubernetes\"\n[[runtimes]]\nname = \"python3\"\ncommand = [\"/usr/bin/python3\"]\nimage = \"{PYTHON}\"\n[kubernetes]\nnamespace = \"{NAMESPACE}\"\nworkspace_claim = \"{CLAIM}\"\nhelper_image = \"{HELPER}\"\n"
    ))
    .unwrap();
    parsed.validate().unwrap();
    let kubernetes = parsed.kubernetes.unwrap();
    assert_eq!(kubernetes.run_as_user, 65534);
    assert_eq!(kubernetes.probe_timeout_secs, 180);
    assert!(kubernetes.kubeconfig.is_none());
}

/// The example deployment hangs together: its keeper configuration is valid and sells compute
/// on this cluster, the workspace claim is shared and mounted at the configured work root, and
/// the keeper runs as the account the role is bound to.
#[test]
fn kubernetes_deployment_manifest_is_coherent() {
    use k8s_openapi::api::{
        apps::v1::StatefulSet,
        core::v1::{ConfigMap, PersistentVolumeClaim},
    };
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let read = |file: &str| -> Vec<Value> {
        serde_saphyr::from_multiple(&std::fs::read_to_string(folder.join(file)).unwrap()).unwrap()
    };
    let documents = read("keeper.yaml");
    let rbac = read("keeper-rbac.yaml");
    let of_kind = |kind: &str| -> Value {
        documents
            .iter()
            .find(|document| document["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };
    let config_map: ConfigMap = serde_json::from_value(of_kind("ConfigMap")).unwrap();
    let text = &config_map.data.unwrap()["keeper.toml"];
    let config: crate::config::Config = toml::from_str(text).unwrap();
    let compute = config.compute.clone().expect("a [compute] table");
    compute.validate().unwrap();
    assert_eq!(compute.backend, BackendKind::Kubernetes);
    let kubernetes = compute.kubernetes.clone().unwrap();

    let claim: PersistentVolumeClaim =
        serde_json::from_value(of_kind("PersistentVolumeClaim")).unwrap();
    assert_eq!(
        claim.metadata.name.as_deref(),
        Some(kubernetes.workspace_claim.as_str())
    );
    assert_eq!(
        claim.metadata.namespace.as_deref(),
        Some(kubernetes.namespace.as_str())
    );
    assert_eq!(claim.spec.unwrap().access_modes.unwrap(), ["ReadWriteMany"]);

    let set: StatefulSet = serde_json::from_value(of_kind("StatefulSet")).unwrap();
    let spec = set.spec.unwrap();
    assert_eq!(spec.replicas, Some(1), "one keeper per store");
    let pod = spec.template.spec.unwrap();
    let account = rbac
        .iter()
        .find(|document| document["kind"] == "ServiceAccount")
        .unwrap()["metadata"]["name"]
        .clone();
    assert_eq!(pod.service_account_name.as_deref(), account.as_str());
    assert_ne!(
        pod.automount_service_account_token,
        Some(false),
        "the keeper needs its token"
    );
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let work = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|volume| {
            volume
                .persistent_volume_claim
                .as_ref()
                .is_some_and(|claim| claim.claim_name == kubernetes.workspace_claim)
        })
        .expect("the workspace claim is a volume of the keeper");
    let keeper = &pod.containers[0];
    let mount = keeper
        .volume_mounts
        .iter()
        .flatten()
        .find(|mount| mount.name == work.name)
        .expect("the workspace claim is mounted");
    assert_eq!(std::path::Path::new(&mount.mount_path), compute.work_root);
    assert_ne!(mount.read_only, Some(true));
    let context = keeper.security_context.clone().unwrap();
    assert_eq!(context.read_only_root_filesystem, Some(true));
    assert_eq!(context.allow_privilege_escalation, Some(false));
    assert!(
        keeper
            .env
            .iter()
            .flatten()
            .any(|variable| variable.name == crate::config::KEY_ENV
                && variable
                    .value_from
                    .as_ref()
                    .is_some_and(|from| from.secret_key_ref.is_some())),
        "the key comes from a Secret"
    );
    assert!(
        keeper
            .args
            .iter()
            .flatten()
            .any(|arg| arg == "/etc/insitu/keeper.toml"),
        "the keeper reads the mounted configuration"
    );
    // Liveness waits for the start-up checks: the isolation check, then the sweep.
    let startup = keeper.startup_probe.clone().expect("a startup probe");
    let patience = startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3);
    let check = i32::try_from(kubernetes.probe_timeout_secs).unwrap() + 2 * 30 + 60;
    assert!(
        patience >= check,
        "{patience} s to start, the check may take {check} s"
    );
    // The role is bound in the namespace the jobs run in.
    for document in &rbac {
        assert_eq!(
            document["metadata"]["namespace"],
            kubernetes.namespace.as_str()
        );
    }
}

/// Runs `script` with busybox's `sh` and tools only, as the helper image has them, in
/// bubblewrap with `binds` (host folder, path inside, read-only); without network unless
/// `network`. Returns its exit status and what it wrote.
fn busybox(script: &str, binds: &[(&std::path::Path, &str, bool)], network: bool) -> (i32, String) {
    assert!(
        std::path::Path::new("/usr/bin/busybox").exists(),
        "busybox is missing: script/sandbox-deps.sh installs it"
    );
    let mut command = std::process::Command::new("/usr/bin/bwrap");
    command.args(["--unshare-all", "--die-with-parent"]);
    if network {
        command.arg("--share-net");
    }
    command.args([
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--ro-bind",
        "/usr/bin/busybox",
        "/bin/busybox",
    ]);
    for applet in ["sh", "stat", "cp", "chmod", "cat", "echo", "true", "nc"] {
        command.args(["--symlink", "busybox", &format!("/bin/{applet}")]);
    }
    for (host, inside, read_only) in binds {
        command
            .arg(if *read_only { "--ro-bind" } else { "--bind" })
            .arg(host)
            .arg(inside);
    }
    command.args([
        "--clearenv",
        "--setenv",
        "PATH",
        "/bin",
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    let output = command.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), said)
}

fn blueprint_of(config: &ComputeConfig) -> objects::Blueprint {
    objects::Blueprint {
        config: config.kubernetes.clone().unwrap(),
        instance: "0123456789ab".into(),
        grace_secs: 7,
    }
}

fn script_of(job: &k8s_openapi::api::batch::v1::Job) -> String {
    serde_json::to_value(job).unwrap()["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The collector's own script, run with busybox: regular files only (hidden ones, odd names and
/// empty ones included; no links, no folders), made readable; an output over its limit (a
/// sparse file counting in full) refused, nothing copied.
#[test]
fn kubernetes_collector_script_copies_regular_files_within_the_limit() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let config = config_in(root.path().join("compute"));
    let job = prepared(&config, 1);
    let collector = blueprint_of(&config).collector_job(
        "insitu-x",
        &job,
        &objects::Placement {
            group: 4242,
            preset: None,
        },
    );
    let script = script_of(&collector);
    let collect = |output: &std::path::Path| {
        let collected = tempfile::tempdir().unwrap();
        let (code, said) = busybox(
            &script,
            &[
                (output, "/output", true),
                (collected.path(), "/collected", false),
            ],
            false,
        );
        let mut copied: Vec<(String, u32)> = std::fs::read_dir(collected.path())
            .unwrap()
            .flatten()
            .map(|entry| {
                let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                (entry.file_name().to_string_lossy().into_owned(), mode)
            })
            .collect();
        copied.sort();
        (code, said, copied)
    };

    let output = tempfile::tempdir().unwrap();
    let folder = output.path();
    for (name, text) in [
        ("a.csv", "1,2\n"),
        (".hidden", "h"),
        ("with space.txt", "s"),
        ("-dash", "d"),
        ("empty", ""),
    ] {
        std::fs::write(folder.join(name), text).unwrap();
    }
    std::fs::set_permissions(folder.join("a.csv"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("a.csv", folder.join("link")).unwrap();
    std::fs::create_dir(folder.join("sub")).unwrap();
    std::fs::write(folder.join("sub/inner.txt"), "i").unwrap();
    let (code, said, copied) = collect(folder);
    assert_eq!(code, 0, "{said}");
    let names: Vec<&str> = copied.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["-dash", ".hidden", "a.csv", "empty", "with space.txt"]
    );
    assert!(copied.iter().all(|(_, mode)| *mode == 0o644), "{copied:?}");

    // Over the limit (8 MiB): one sparse file a byte over it, two files under it together
    // over it, one sparse file of a tebibyte.
    let sizes: [&[u64]; 3] = [&[8 * 1024 * 1024 + 1], &[5 << 20, 5 << 20], &[1 << 40]];
    for sizes in sizes {
        let output = tempfile::tempdir().unwrap();
        for (index, size) in sizes.iter().enumerate() {
            std::fs::File::create(output.path().join(format!("part{index}")))
                .unwrap()
                .set_len(*size)
                .unwrap();
        }
        let (code, said, copied) = collect(output.path());
        assert_eq!(code, objects::OUTPUT_TOO_LARGE_EXIT, "{sizes:?}: {said}");
        assert!(
            said.contains("more than its limit of 8388608 bytes"),
            "{said}"
        );
        assert!(copied.is_empty(), "{sizes:?}: nothing copied");
    }

    // No output at all.
    let output = tempfile::tempdir().unwrap();
    let (code, said, copied) = collect(output.path());
    assert_eq!(code, 0, "{said}");
    assert!(copied.is_empty());
}

/// The isolation check's probes, run with busybox's `nc`: each exits 0 only when it sees what it
/// expects (the control reaching its target, the isolated one not), and the control reads the
/// keeper's marker or exits with its own status.
#[test]
fn kubernetes_probe_scripts_tell_reached_from_unreachable() {
    let root = tempfile::tempdir().unwrap();
    let config = config_in(root.path().join("compute"));
    let blueprint = blueprint_of(&config);
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let open = open.local_addr().unwrap();
    for (target, reachable) in [(open, true), (closed, false)] {
        for expect_reach in [true, false] {
            let probe = blueprint.canary_job(
                "probe",
                "group",
                Some(&target.to_string()),
                expect_reach,
                None,
                4242,
            );
            let (code, said) = busybox(&script_of(&probe), &[], true);
            let expected = if reachable == expect_reach {
                0
            } else {
                objects::PROBE_UNEXPECTED_EXIT
            };
            assert_eq!(
                code, expected,
                "{target}, expecting to reach it: {expect_reach}: {said}"
            );
            assert!(
                said.contains(if reachable { "reached" } else { "unreachable" }),
                "{said}"
            );
        }
    }
    // The control probe reads the marker through the claim, read-only.
    let claim = tempfile::tempdir().unwrap();
    std::fs::write(claim.path().join(".insitu-probe-abc"), "abc").unwrap();
    for (marker, expected) in [
        (".insitu-probe-abc", 0),
        (".insitu-probe-def", objects::MARKER_MISSING_EXIT),
    ] {
        let probe = blueprint.canary_job(
            "control",
            "control",
            Some(&open.to_string()),
            true,
            Some(marker),
            4242,
        );
        let (code, said) = busybox(
            &script_of(&probe),
            &[(claim.path(), "/workspace", true)],
            true,
        );
        assert_eq!(code, expected, "{marker}: {said}");
    }
}
