//! Reading how a Job ended from what the API says of it and of its pod.

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};

use super::super::Ending;

/// Where a Job stands, as its object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not ended yet (its pod pending or running, or the Job being deleted).
    Active,
    /// Its `Complete` condition is true: the pod succeeded.
    Complete,
    /// Its `Failed` condition is true, for `reason` (`DeadlineExceeded`,
    /// `BackoffLimitExceeded`, ...).
    Failed {
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// The Job is gone (deleted, by the keeper or by someone else).
    Gone,
}

/// Where `job` stands (`None`: it does not exist).
pub fn job_state(job: Option<&Job>) -> JobState {
    let Some(job) = job else {
        return JobState::Gone;
    };
    let conditions = job
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_deref())
        .unwrap_or_default();
    for condition in conditions.iter().filter(|c| c.status == "True") {
        match condition.type_.as_str() {
            "Complete" => return JobState::Complete,
            "Failed" => {
                return JobState::Failed {
                    reason: condition.reason.clone().unwrap_or_default(),
                    message: condition.message.clone().unwrap_or_default(),
                };
            }
            _ => {}
        }
    }
    JobState::Active
}

/// How a container ended, as its pod's status says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Termination {
    /// Whether the container started at all.
    pub started: bool,
    /// Its exit status, once it ended.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if known.
    pub signal: Option<i32>,
    /// The kubelet's reason (`OOMKilled`, `Error`, `Completed`, `DeadlineExceeded`, ...).
    pub reason: Option<String>,
    /// Why it is (or was) waiting, if it never ran (`ImagePullBackOff`, ...).
    pub waiting: Option<String>,
    /// Milliseconds from its start to its end.
    pub wall_ms: u64,
    /// The pod's own reason (`Evicted`, `DeadlineExceeded`, ...) and message.
    pub pod_reason: Option<(String, String)>,
}

/// How container `container` of the newest of `pods` ended (default: it never ran).
pub fn termination(pods: &[Pod], container: &str) -> Termination {
    let Some(pod) = pods
        .iter()
        .max_by_key(|pod| pod.metadata.creation_timestamp.clone())
    else {
        return Termination::default();
    };
    let status = pod.status.as_ref();
    let pod_reason = status
        .and_then(|status| status.reason.clone())
        .map(|reason| {
            let message = status
                .and_then(|status| status.message.clone())
                .unwrap_or_default();
            (reason, message)
        });
    let container = status
        .and_then(|status| status.container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|candidate| candidate.name == container);
    let Some(container) = container else {
        // Never placed on a node: the scheduler says why (`Unschedulable`).
        let unscheduled = status
            .and_then(|status| status.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .find(|condition| condition.type_ == "PodScheduled" && condition.status == "False")
            .and_then(|condition| condition.reason.clone());
        return Termination {
            waiting: unscheduled,
            pod_reason,
            ..Termination::default()
        };
    };
    let state = container.state.as_ref();
    let waiting = state
        .and_then(|state| state.waiting.as_ref())
        .and_then(|waiting| waiting.reason.clone());
    let running = state.and_then(|state| state.running.as_ref());
    let Some(ended) = state.and_then(|state| state.terminated.as_ref()) else {
        return Termination {
            started: running.is_some(),
            waiting,
            pod_reason,
            ..Termination::default()
        };
    };
    let wall_ms = match (&ended.started_at, &ended.finished_at) {
        (Some(start), Some(end)) => {
            u64::try_from(end.0.as_millisecond() - start.0.as_millisecond()).unwrap_or(0)
        }
        _ => 0,
    };
    // A container killed by a signal exits with 128 + the signal's number.
    let signal = ended.signal.or_else(|| {
        (129..=128 + 64)
            .contains(&ended.exit_code)
            .then(|| ended.exit_code - 128)
    });
    Termination {
        started: ended.started_at.is_some(),
        exit_code: Some(ended.exit_code),
        signal,
        reason: ended.reason.clone(),
        waiting,
        wall_ms,
        pod_reason,
    }
}

/// How a run's algorithm step ended, from its Job's `state` and its container's `ended`, and
/// a detail for the keeper's log when the ending is not the algorithm's own doing.
pub fn run_ending(state: &JobState, ended: &Termination, stop_asked: bool) -> (Ending, String) {
    match state {
        JobState::Active => (Ending::SandboxFailed, "the job has not ended".into()),
        JobState::Complete => (Ending::Succeeded, String::new()),
        JobState::Gone if stop_asked => (Ending::Stopped, String::new()),
        JobState::Gone => (
            Ending::SandboxFailed,
            "the job was deleted by someone other than the keeper".into(),
        ),
        JobState::Failed { reason, message } => {
            if ended.reason.as_deref() == Some("OOMKilled") {
                return (Ending::OutOfMemory, String::new());
            }
            if !ended.started {
                let why = ended
                    .waiting
                    .clone()
                    .or_else(|| ended.pod_reason.as_ref().map(|(reason, _)| reason.clone()))
                    .unwrap_or_else(|| reason.clone());
                return (
                    Ending::SandboxFailed,
                    format!("the algorithm's container never ran ({why}): {message}"),
                );
            }
            if reason == "DeadlineExceeded" {
                return (Ending::TimedOut, String::new());
            }
            if let Some((pod_reason, pod_message)) = &ended.pod_reason
                && pod_reason == "Evicted"
            {
                return (
                    Ending::SandboxFailed,
                    format!("the node evicted the pod: {pod_message}"),
                );
            }
            match ended.exit_code {
                Some(code) if code != 0 => (Ending::Failed, String::new()),
                _ => (
                    Ending::SandboxFailed,
                    format!("the job failed ({reason}): {message}"),
                ),
            }
        }
    }
}

/// How a run ended once its collector's Job ended in `state`, with `ended` its container.
pub fn collect_ending(state: &JobState, ended: &Termination, stop_asked: bool) -> (Ending, String) {
    match state {
        JobState::Complete => (Ending::Succeeded, String::new()),
        JobState::Gone if stop_asked => (Ending::Stopped, String::new()),
        JobState::Failed { .. }
            if ended.exit_code == Some(super::objects::OUTPUT_TOO_LARGE_EXIT) =>
        {
            (Ending::OutputTooLarge, String::new())
        }
        JobState::Failed { reason, message } => (
            Ending::SandboxFailed,
            format!("collecting the output failed ({reason}): {message}"),
        ),
        JobState::Active | JobState::Gone => {
            (Ending::SandboxFailed, "the collector's job vanished".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn only_final_conditions_end_a_job() {
        // Interim conditions (set while the pod still terminates) do not end it.
        let interim = job(serde_json::json!([
            {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"},
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Failed", "status": "False"}
        ]));
        assert_eq!(job_state(Some(&interim)), JobState::Active);
        let failed = job(serde_json::json!([
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}
        ]));
        assert_eq!(
            job_state(Some(&failed)),
            JobState::Failed {
                reason: "DeadlineExceeded".into(),
                message: "late".into()
            }
        );
        assert_eq!(job_state(None), JobState::Gone);
    }

    #[test]
    fn a_pod_never_scheduled_says_why() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/3 nodes are available: 3 Insufficient memory."}]}
        }))
        .unwrap();
        let ended = termination(&[pod], "algorithm");
        assert!(!ended.started);
        assert_eq!(ended.waiting.as_deref(), Some("Unschedulable"));
        let state = JobState::Failed {
            reason: "DeadlineExceeded".into(),
            message: "Job was active longer than specified deadline".into(),
        };
        let (ending, detail) = run_ending(&state, &ended, false);
        assert_eq!(ending, Ending::SandboxFailed);
        assert!(detail.contains("never ran (Unschedulable)"), "{detail}");
        // No pod at all: the same, with the Job's reason.
        let (ending, detail) = run_ending(&state, &termination(&[], "algorithm"), false);
        assert_eq!(ending, Ending::SandboxFailed);
        assert!(detail.contains("never ran (DeadlineExceeded)"), "{detail}");
    }
}
