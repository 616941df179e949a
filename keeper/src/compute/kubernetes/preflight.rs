//! The start-up check of a cluster, and the sweep of what an earlier keeper left on it.
//!
//! In order: the API answers; the keeper's account holds every permission the backend uses
//! (one SelfSubjectAccessReview each); the workspace claim exists and is bound; then two probes
//! run side by side, each trying to reach the same address: a *control* probe, which must reach
//! it and must read a marker the keeper wrote into its `work_root` (so the claim the jobs mount
//! is the folder the keeper writes), and an *isolated* probe under a deny-all NetworkPolicy,
//! which must not reach it. A cluster whose network plugin ignores NetworkPolicy fails the
//! second; one where nothing can be reached gives no answer, and the keeper says which address
//! to try instead.

use std::{path::Path, time::Duration};

use futures::future::join_all;
use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    batch::v1::Job,
    core::v1::{PersistentVolumeClaim, Pod},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};

use super::{
    bounded, delete_pods, describe_error, foreground, is_not_found,
    objects::{Blueprint, JOB_NAME_LABEL, MARKER_MISSING_EXIT, PROBE_UNEXPECTED_EXIT, STEP_LABEL},
    outcome::{JobState, termination},
    read_container_logs, wait_for_end,
};

/// Every permission the backend uses in its namespace: API group, resource, verb.
pub const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("batch", "jobs", "create"),
    ("batch", "jobs", "get"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("batch", "jobs", "delete"),
    ("batch", "jobs", "deletecollection"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods", "delete"),
    ("", "pods", "deletecollection"),
    ("", "pods/log", "get"),
    ("", "persistentvolumeclaims", "create"),
    ("", "persistentvolumeclaims", "get"),
    ("", "persistentvolumeclaims", "delete"),
    ("", "persistentvolumeclaims", "deletecollection"),
    ("networking.k8s.io", "networkpolicies", "create"),
    ("networking.k8s.io", "networkpolicies", "delete"),
    ("networking.k8s.io", "networkpolicies", "deletecollection"),
];

/// What the check found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The API server's version (`v1.33.2`).
    pub server_version: String,
}

/// Checks the cluster; `Err` says, in words, why jobs cannot run there.
///
/// # Errors
///
/// The first check that failed, and what to do about it.
pub async fn check(
    client: &Client,
    blueprint: &Blueprint,
    work_root: &Path,
) -> Result<Report, String> {
    let namespace = &blueprint.config.namespace;
    let version = bounded(client.apiserver_version())
        .await
        .map_err(|error| format!("cannot reach the cluster's API: {}", describe_error(&error)))?;
    let server_version = version.git_version;

    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let asked = PERMISSIONS.iter().map(|(group, resource, verb)| {
        let reviews = reviews.clone();
        async move {
            let (kind, subresource) = match resource.split_once('/') {
                Some((kind, subresource)) => (kind, Some(subresource.to_owned())),
                None => (*resource, None),
            };
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(namespace.clone()),
                        group: Some((*group).to_owned()),
                        resource: Some(kind.to_owned()),
                        subresource,
                        verb: Some((*verb).to_owned()),
                        ..ResourceAttributes::default()
                    }),
                    non_resource_attributes: None,
                },
                ..SelfSubjectAccessReview::default()
            };
            let answer = bounded(reviews.create(&PostParams::default(), &review)).await;
            (group, resource, verb, answer)
        }
    });
    let mut denied = Vec::new();
    for (group, resource, verb, answer) in join_all(asked).await {
        let allowed = answer
            .map_err(|error| {
                format!(
                    "cannot review the keeper's permissions: {}",
                    describe_error(&error)
                )
            })?
            .status
            .is_some_and(|status| status.allowed);
        if !allowed {
            let group = if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            };
            denied.push(format!("{verb} {resource}{group}"));
        }
    }
    if denied.len() == PERMISSIONS.len() {
        return Err(format!(
            "the keeper's account has none of its permissions in namespace {namespace}: check that the namespace exists and that deploy/kubernetes/keeper-rbac.yaml is applied there"
        ));
    }
    if !denied.is_empty() {
        return Err(format!(
            "the keeper's account may not {} in namespace {namespace}: bind it to the role of deploy/kubernetes/keeper-rbac.yaml",
            denied.join(", ")
        ));
    }

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim_name = &blueprint.config.workspace_claim;
    let claim = match bounded(claims.get(claim_name)).await {
        Ok(claim) => claim,
        Err(error) if is_not_found(&error) => {
            return Err(format!(
                "the workspace claim {claim_name} does not exist in namespace {namespace} (or the namespace does not)"
            ));
        }
        Err(error) => {
            return Err(format!(
                "cannot read the workspace claim {claim_name}: {}",
                describe_error(&error)
            ));
        }
    };
    let phase = claim
        .status
        .as_ref()
        .and_then(|status| status.phase.clone())
        .unwrap_or_default();
    if phase != "Bound" {
        return Err(format!(
            "the workspace claim {claim_name} is {phase:?}, not Bound"
        ));
    }
    let shared = claim
        .spec
        .as_ref()
        .and_then(|spec| spec.access_modes.as_ref())
        .is_some_and(|modes| modes.iter().any(|mode| mode == "ReadWriteMany"));
    if !shared {
        tracing::warn!(
            claim = %claim_name,
            "the workspace claim is not ReadWriteMany: jobs can only run on the keeper's node"
        );
    }

    probe_isolation(client, blueprint, work_root).await?;
    Ok(Report { server_version })
}

/// Runs the two probes and reads their verdict.
async fn probe_isolation(
    client: &Client,
    blueprint: &Blueprint,
    work_root: &Path,
) -> Result<(), String> {
    let gid = std::fs::metadata(work_root)
        .map_err(|error| format!("cannot read {}: {error}", work_root.display()))
        .map(|metadata| std::os::unix::fs::MetadataExt::gid(&metadata))?;
    let group =
        super::shared_group(gid).map_err(|error| format!("{} {error}", work_root.display()))?;
    let nonce = alloy::primitives::hex::encode(rand::random::<[u8; 5]>());
    let marker = format!(".insitu-probe-{nonce}");
    let marker_path = work_root.join(&marker);
    std::fs::write(&marker_path, &nonce).map_err(|error| {
        format!(
            "cannot write the probe's marker {}: {error}",
            marker_path.display()
        )
    })?;
    let verdict = run_probes(client, blueprint, &nonce, &marker, group).await;
    let _ = std::fs::remove_file(&marker_path);
    verdict
}

async fn run_probes(
    client: &Client,
    blueprint: &Blueprint,
    nonce: &str,
    marker: &str,
    group_id: i64,
) -> Result<(), String> {
    let namespace = &blueprint.config.namespace;
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    let group = format!("insitu-canary-{nonce}");
    let isolated = format!("{group}-isolated");
    let control = format!("{group}-control");
    let target = blueprint.config.canary_target.as_deref();
    // The probes' pods go before the policy that isolates one of them.
    let cleanup = || async {
        for job in [&isolated, &control] {
            let _ = bounded(jobs.delete(job, &foreground(0))).await;
        }
        let probes = format!("{},{STEP_LABEL}=canary", blueprint.keeper_selector());
        if let Err(why) = delete_pods(client, blueprint, &probes).await {
            tracing::warn!(%why, "the isolation check's probes are left; so is their policy");
            return;
        }
        let _ = bounded(policies.delete(&group, &DeleteParams::default())).await;
    };

    let created = async {
        bounded(policies.create(&PostParams::default(), &blueprint.canary_policy(&group))).await?;
        bounded(jobs.create(
            &PostParams::default(),
            &blueprint.canary_job(&isolated, &group, target, false, None, group_id),
        ))
        .await?;
        bounded(jobs.create(
            &PostParams::default(),
            &blueprint.canary_job(&control, &control, target, true, Some(marker), group_id),
        ))
        .await?;
        Ok::<_, kube::Error>(())
    }
    .await;
    if let Err(error) = created {
        cleanup().await;
        if is_not_found(&error) {
            return Err(format!("namespace {namespace} does not exist"));
        }
        return Err(format!(
            "cannot start the isolation check: {}",
            describe_error(&error)
        ));
    }

    let limit = Duration::from_secs(blueprint.config.probe_timeout_secs + 30);
    let waited = tokio::time::timeout(limit, async {
        futures::join!(
            wait_for_end(&jobs, &isolated, limit),
            wait_for_end(&jobs, &control, limit)
        )
    })
    .await;
    let verdict = match waited {
        Err(_) => Err(format!(
            "the isolation check did not finish in {} s",
            limit.as_secs()
        )),
        Ok((isolated_state, control_state)) => {
            let control_pods = pods_of(client, namespace, &control).await;
            let isolated_pods = pods_of(client, namespace, &isolated).await;
            let control_end = termination(&control_pods, "canary");
            let isolated_end = termination(&isolated_pods, "canary");
            let reach = target.unwrap_or("the API server's service address");
            if control_end.exit_code == Some(MARKER_MISSING_EXIT) {
                Err(format!(
                    "a pod mounting the workspace claim {} did not find the keeper's marker: the keeper's work_root must be the mount of that claim, readable by account {}",
                    blueprint.config.workspace_claim, blueprint.config.run_as_user
                ))
            } else if isolated_end.exit_code == Some(PROBE_UNEXPECTED_EXIT) {
                Err(format!(
                    "the cluster does not enforce NetworkPolicy: a pod under a deny-all policy reached {reach}; jobs would not be isolated (use a network plugin that enforces NetworkPolicy)"
                ))
            } else if control_end.exit_code == Some(PROBE_UNEXPECTED_EXIT) {
                Err(format!(
                    "the isolation check is inconclusive: a pod without a policy could not reach {reach} either; set canary_target to an address pods in namespace {namespace} can reach"
                ))
            } else if isolated_state != JobState::Complete || control_state != JobState::Complete {
                let waiting = [&isolated_end, &control_end]
                    .iter()
                    .find_map(|end| end.waiting.clone())
                    .map(|reason| format!(" (a probe's container is {reason})"))
                    .unwrap_or_default();
                let logs = read_container_logs(client, blueprint, &control, "canary", Some(2048))
                    .await
                    .map(|(text, _)| String::from_utf8_lossy(&text).trim().to_owned())
                    .unwrap_or_default();
                Err(format!(
                    "the isolation check's probes did not run to their end{waiting}; its control probe said: {logs:?}"
                ))
            } else {
                Ok(())
            }
        }
    };
    cleanup().await;
    verdict
}

async fn pods_of(client: &Client, namespace: &str, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    bounded(pods.list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}"))))
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}

/// Deletes every Job, pod, claim and NetworkPolicy of this keeper (its instance label) an
/// earlier process left (policies and claims only once no pod is left); returns how many Jobs
/// it deleted.
pub async fn sweep(client: &Client, blueprint: &Blueprint) -> usize {
    let namespace = &blueprint.config.namespace;
    let selector = blueprint.keeper_selector();
    let params = ListParams::default().labels(&selector);
    let mut swept = 0;
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    match bounded(jobs.delete_collection(&foreground(0), &params)).await {
        Ok(deleted) => swept += deleted.left().map_or(0, |list| list.items.len()),
        Err(error) => tracing::warn!(error = %describe_error(&error), "cannot sweep old jobs"),
    }
    if let Err(why) = delete_pods(client, blueprint, &selector).await {
        tracing::warn!(%why, "pods an earlier keeper left are not gone: their policies stay");
        return swept;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    if let Err(error) = bounded(claims.delete_collection(&DeleteParams::default(), &params)).await {
        tracing::warn!(error = %describe_error(&error), "cannot sweep old output claims");
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    if let Err(error) = bounded(policies.delete_collection(&DeleteParams::default(), &params)).await
    {
        tracing::warn!(error = %describe_error(&error), "cannot sweep old network policies");
    }
    swept
}
