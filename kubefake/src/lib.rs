//! A fake Kubernetes API server for tests. It records every request, keeps the objects a client
//! creates, answers gets, lists, watches and deletes (foreground deletion included), plays the
//! kubelet for the Jobs it is given (pods, container states, logs, conditions), and injects
//! faults (API errors, closed watches, expired resource versions) on demand.
//!
//! It is reached in process, behind a `kube::Client` (kube's `tower-test` pattern:
//! [`FakeCluster::client`]), or over HTTP on a loopback port with a kubeconfig
//! ([`FakeCluster::serve`]), for a program that builds its own client. Its kubelet either plays
//! a scripted ending ([`Behaviour`]) or executes the pod's container on this machine
//! ([`Behaviour::Execute`]): in bubblewrap, without network, with the pod's volumes bound where
//! it mounts them (read-only where the volume or the mount says so). Claims are folders: the
//! claim given at creation is `claim_root`, each other claim a folder of its own.
//!
//! Only the parts of the API the keeper's Kubernetes backend uses are served; no admission,
//! scheduling or network policy is enforced (the isolation probes are scripted).

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The label Kubernetes puts on a Job's pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// The response body of the fake: whole, or streamed for watches.
pub type FakeBody = UnsyncBoxBody<Bytes, Infallible>;

/// A request the backend made.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's parameters.
    pub query: BTreeMap<String, String>,
    /// The body, parsed (`Null` when empty).
    pub body: Value,
}

impl Recorded {
    /// Whether this is a watch.
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|value| value == "true" || value == "1")
    }
}

/// How a pod the fake plays ends.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// The container exits with this status after writing `log`; with `files`, those are
    /// written where the pod's `/collected` mount points (what a real collector copies).
    Exit {
        code: i32,
        log: String,
        files: Vec<(String, Vec<u8>)>,
    },
    /// The kernel kills it for its memory.
    OutOfMemory,
    /// It runs past its deadline: the Job fails with `DeadlineExceeded`.
    Deadline,
    /// Its image never pulls; the deadline then fails the Job.
    NeverStarts,
    /// The node evicts the pod.
    Evicted,
    /// It runs until deleted.
    Hangs,
    /// A probe of the keeper's isolation check: it reads the marker its script names (if it
    /// mounts the claim) from `claim_root`, exiting with `marker_missing` when it cannot, and
    /// tries its target, exiting with `unexpected` when the result is not `reaches`. The
    /// target is reachable unless the cluster enforces NetworkPolicy and the probe is the
    /// isolated one (`reaches` false), or is unreachable from every pod.
    Probe {
        /// Whether the probe expects to reach its target.
        reaches: bool,
        /// Its exit status when the result is not the expected one.
        unexpected: i32,
        /// Its exit status when the marker is missing.
        marker_missing: i32,
    },
    /// The container runs on this machine (see the crate's documentation), to its exit or
    /// to the Job's deadline.
    Execute,
}

type Script = Box<dyn Fn(&Value) -> Behaviour + Send + Sync>;

/// Makes a pod from its container's state and the pod's own reason and message.
type PodOf<'a> = dyn Fn(Value, Option<(&str, &str)>) -> Value + 'a;

/// A Job condition: its type, reason and message.
type Condition = (&'static str, &'static str, &'static str);

/// The condition of a Job whose pod failed (with no retry left).
const JOB_FAILED: Condition = (
    "Failed",
    "BackoffLimitExceeded",
    "Job has reached the specified backoff limit",
);
/// The condition of a Job past its deadline.
const JOB_PAST_DEADLINE: Condition = (
    "Failed",
    "DeadlineExceeded",
    "Job was active longer than specified deadline",
);
/// The reason and message of a pod past its deadline.
const POD_PAST_DEADLINE: (&str, &str) = (
    "DeadlineExceeded",
    "Pod was active on the node longer than the specified deadline",
);

struct Watcher {
    resource: String,
    name: Option<String>,
    sender: mpsc::UnboundedSender<Bytes>,
}

/// A fault to inject: the next `times` requests whose method is `method` and whose path and
/// query contain `contains` get `code`.
struct Fault {
    method: String,
    contains: String,
    code: u16,
    times: usize,
}

struct State {
    namespace: String,
    namespace_exists: bool,
    objects: BTreeMap<(String, String), Value>,
    requests: Vec<Recorded>,
    version: u64,
    watchers: Vec<Watcher>,
    denied: Vec<(String, String, String)>,
    faults: Vec<Fault>,
    logs: HashMap<String, Vec<u8>>,
    script: Script,
    claim_root: PathBuf,
    claim_name: String,
    other_claims: Arc<tempfile::TempDir>,
    bwrap: PathBuf,
    network_policy_enforced: bool,
    unreachable: bool,
}

/// The fake cluster; clones share it.
#[derive(Clone)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("FakeCluster")
            .field("namespace", &state.namespace)
            .field("objects", &state.objects.len())
            .field("requests", &state.requests.len())
            .finish_non_exhaustive()
    }
}

impl FakeCluster {
    /// A cluster with namespace `namespace`, a bound ReadWriteMany claim `claim` whose files
    /// are those of `claim_root`, and pods that behave as `script` says.
    pub fn new(
        namespace: &str,
        claim: &str,
        claim_root: PathBuf,
        script: impl Fn(&Value) -> Behaviour + Send + Sync + 'static,
    ) -> Self {
        let cluster = Self {
            state: Arc::new(Mutex::new(State {
                namespace: namespace.to_owned(),
                namespace_exists: true,
                objects: BTreeMap::new(),
                requests: Vec::new(),
                version: 100,
                watchers: Vec::new(),
                denied: Vec::new(),
                faults: Vec::new(),
                logs: HashMap::new(),
                script: Box::new(script),
                claim_root,
                claim_name: claim.to_owned(),
                other_claims: Arc::new(tempfile::tempdir().expect("a folder for the claims")),
                bwrap: PathBuf::from("/usr/bin/bwrap"),
                network_policy_enforced: true,
                unreachable: false,
            })),
        };
        cluster.put(
            "persistentvolumeclaims",
            json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": namespace},
                "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}},
                "status": {"phase": "Bound"}
            }),
        );
        cluster
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client talking to this cluster.
    pub fn client(&self) -> kube::Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<FakeBody>>();
        let cluster = self.clone();
        tokio::spawn(async move {
            while let Some((request, responder)) = handle.next_request().await {
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    let response = cluster.serve(request).await;
                    responder.send_response(response);
                });
            }
        });
        kube::Client::new(service, "default")
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// The requests with `method` whose path ends with `suffix`.
    pub fn requests_to(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == method && request.path.ends_with(suffix))
            .collect()
    }

    /// The object `name` of `resource`, if it exists.
    pub fn object(&self, resource: &str, name: &str) -> Option<Value> {
        self.state()
            .objects
            .get(&(resource.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The names of the objects of `resource`.
    pub fn names(&self, resource: &str) -> Vec<String> {
        self.state()
            .objects
            .keys()
            .filter(|(kind, _)| kind == resource)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// Stores `object` as it is (for objects an earlier keeper left).
    pub fn put(&self, resource: &str, mut object: Value) {
        let mut state = self.state();
        state.version += 1;
        object["metadata"]["resourceVersion"] = json!(state.version.to_string());
        object["metadata"]["uid"] = json!(format!("uid-{}", state.version));
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        state.objects.insert((resource.to_owned(), name), object);
    }

    /// Refuses `verb` on `resource` of `group` to the keeper's account.
    pub fn deny(&self, group: &str, resource: &str, verb: &str) {
        self.state()
            .denied
            .push((group.to_owned(), resource.to_owned(), verb.to_owned()));
    }

    /// Answers the next `times` requests of `method` whose path and query contain `contains`
    /// with status `code`.
    pub fn fail(&self, method: &str, contains: &str, code: u16, times: usize) {
        self.state().faults.push(Fault {
            method: method.to_owned(),
            contains: contains.to_owned(),
            code,
            times,
        });
    }

    /// Makes the namespace absent.
    pub fn without_namespace(&self) {
        let mut state = self.state();
        state.namespace_exists = false;
        state.objects.clear();
    }

    /// Makes the network plugin ignore NetworkPolicy.
    pub fn without_network_policy(&self) {
        self.state().network_policy_enforced = false;
    }

    /// Makes the probes' target unreachable from any pod.
    pub fn target_unreachable(&self) {
        self.state().unreachable = true;
    }

    /// Sets the claim's phase.
    pub fn claim_phase(&self, claim: &str, phase: &str) {
        let mut state = self.state();
        if let Some(object) = state
            .objects
            .get_mut(&("persistentvolumeclaims".to_owned(), claim.to_owned()))
        {
            object["status"]["phase"] = json!(phase);
        }
    }

    /// Ends every open watch (as an API server does at its timeout).
    pub fn close_watches(&self) {
        self.state().watchers.clear();
    }

    /// Tells every open watch its resource version expired (410 Gone).
    pub fn expire_watches(&self) {
        let expired = json!({
            "type": "ERROR",
            "object": {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                       "message": "too old resource version", "reason": "Expired", "code": 410}
        });
        let mut state = self.state();
        for watcher in &state.watchers {
            let _ = watcher.sender.send(line(&expired));
        }
        state.watchers.clear();
    }

    /// How many watches are open.
    pub fn open_watches(&self) -> usize {
        let mut state = self.state();
        state.watchers.retain(|watcher| !watcher.sender.is_closed());
        state.watchers.len()
    }

    async fn serve(&self, request: Request<Body>) -> Response<FakeBody> {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        self.respond(&parts.method, &parts.uri, &bytes).await
    }

    /// Serves the API over HTTP on a loopback port, from a task of the current Tokio runtime;
    /// returns its URL.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub fn serve_http(&self) -> std::io::Result<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let url = format!("http://{}", listener.local_addr()?);
        let cluster = self.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let cluster = cluster.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                cluster
                    .respond(&parts.method, &parts.uri, &bytes)
                    .await
                    .map(axum::body::Body::new)
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }

    /// A kubeconfig for the API at `url` (from [`serve_http`](Self::serve_http)), with
    /// `namespace` as its default.
    pub fn kubeconfig(url: &str, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n\
             current-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n"
        )
    }

    async fn respond(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        bytes: &[u8],
    ) -> Response<FakeBody> {
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).unwrap_or(Value::Null)
        };
        let path = uri.path().to_owned();
        let query: BTreeMap<String, String> = uri
            .query()
            .map(|query| {
                url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let recorded = Recorded {
            method: method.to_string(),
            path: path.clone(),
            query,
            body,
        };
        let whole = format!("{}?{}", path, uri.query().unwrap_or_default());
        {
            let mut state = self.state();
            state.requests.push(recorded.clone());
            if let Some(fault) = state.faults.iter_mut().find(|fault| {
                fault.times > 0
                    && fault.method == recorded.method
                    && whole.contains(&fault.contains)
            }) {
                fault.times -= 1;
                return status(fault.code, "injected fault");
            }
        }
        self.route(recorded).await
    }

    async fn route(&self, request: Recorded) -> Response<FakeBody> {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        if request.path == "/version" {
            return ok(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.2",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-06-01T00:00:00Z",
                "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}));
        }
        if request.path.ends_with("/selfsubjectaccessreviews") {
            let attributes = &request.body["spec"]["resourceAttributes"];
            let resource = match attributes["subresource"].as_str() {
                Some(sub) => format!(
                    "{}/{sub}",
                    attributes["resource"].as_str().unwrap_or_default()
                ),
                None => attributes["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            let key = (
                attributes["group"].as_str().unwrap_or_default().to_owned(),
                resource,
                attributes["verb"].as_str().unwrap_or_default().to_owned(),
            );
            let allowed = !self.state().denied.contains(&key);
            let mut review = request.body.clone();
            review["status"] = json!({"allowed": allowed});
            return created(review);
        }
        let Some(at) = segments.iter().position(|segment| *segment == "namespaces") else {
            return status(404, "no such path");
        };
        let namespace = segments.get(at + 1).copied().unwrap_or_default();
        let resource = segments.get(at + 2).copied().unwrap_or_default().to_owned();
        let name = segments.get(at + 3).map(|name| (*name).to_owned());
        let sub = segments.get(at + 4).copied();
        {
            let state = self.state();
            if namespace != state.namespace || !state.namespace_exists {
                return status(404, &format!("namespaces \"{namespace}\" not found"));
            }
        }
        match (request.method.as_str(), name, sub) {
            ("GET", Some(name), Some("log")) => {
                let follow = request
                    .query
                    .get("follow")
                    .is_some_and(|value| value == "true");
                if follow {
                    // The stream ends when the container does (or its pod goes).
                    for _ in 0..1500 {
                        let ended = self.object("pods", &name).is_none_or(|pod| {
                            pod["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
                        });
                        if ended {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                } else if self.object("pods", &name).is_none() {
                    return status(404, &format!("pods \"{name}\" not found"));
                }
                let log = self.state().logs.get(&name).cloned();
                match log {
                    None => status(404, "no such pod"),
                    Some(mut log) => {
                        if let Some(limit) = request.query.get("limitBytes") {
                            log.truncate(limit.parse().unwrap_or(usize::MAX));
                        }
                        Response::new(Full::new(Bytes::from(log)).boxed_unsync())
                    }
                }
            }
            ("GET", Some(name), None) => match self.object(&resource, &name) {
                Some(object) => ok(object),
                None => status(404, &format!("{resource} \"{name}\" not found")),
            },
            ("GET", None, None) if request.is_watch() => self.watch(&resource, &request),
            ("GET", None, None) => {
                let items = self.matching(&resource, &request);
                let version = self.state().version;
                ok(json!({"apiVersion": "v1", "kind": "List",
                    "metadata": {"resourceVersion": version.to_string()}, "items": items}))
            }
            ("POST", None, None) => self.create(&resource, request.body.clone()),
            ("DELETE", Some(name), None) => self.delete(&resource, &name, &request.body),
            ("DELETE", None, None) => {
                let items = self.matching(&resource, &request);
                for item in &items {
                    let name = item["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    self.remove(&resource, &name);
                }
                ok(json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}))
            }
            _ => status(405, "method not allowed"),
        }
    }

    fn matching(&self, resource: &str, request: &Recorded) -> Vec<Value> {
        let state = self.state();
        let name = request
            .query
            .get("fieldSelector")
            .and_then(|selector| selector.strip_prefix("metadata.name="));
        let labels: Vec<(&str, &str)> = request
            .query
            .get("labelSelector")
            .map(|selector| {
                selector
                    .split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .collect()
            })
            .unwrap_or_default();
        state
            .objects
            .iter()
            .filter(|((kind, object_name), object)| {
                kind == resource
                    && name.is_none_or(|name| name == object_name)
                    && labels.iter().all(|(key, value)| {
                        object["metadata"]["labels"][*key].as_str() == Some(*value)
                    })
            })
            .map(|(_, object)| object.clone())
            .collect()
    }

    fn watch(&self, resource: &str, request: &Recorded) -> Response<FakeBody> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let name = request
            .query
            .get("fieldSelector")
            .and_then(|selector| selector.strip_prefix("metadata.name="))
            .map(str::to_owned);
        self.state().watchers.push(Watcher {
            resource: resource.to_owned(),
            name,
            sender,
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            let bytes = receiver.recv().await?;
            Some((Ok::<_, Infallible>(Frame::data(bytes)), receiver))
        });
        Response::new(StreamBody::new(stream).boxed_unsync())
    }

    fn notify(&self, resource: &str, kind: &str, object: &Value) {
        let event = line(&json!({"type": kind, "object": object}));
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let mut state = self.state();
        state.watchers.retain(|watcher| {
            if watcher.resource != resource || watcher.name.as_deref().is_some_and(|n| n != name) {
                return !watcher.sender.is_closed();
            }
            watcher.sender.send(event.clone()).is_ok()
        });
    }

    fn create(&self, resource: &str, mut object: Value) -> Response<FakeBody> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if self.object(resource, &name).is_some() {
            return status(409, &format!("{resource} \"{name}\" already exists"));
        }
        object["metadata"]["creationTimestamp"] = json!("2026-11-30T12:00:00Z");
        self.put(resource, object);
        let stored = self.object(resource, &name).unwrap_or(Value::Null);
        self.notify(resource, "ADDED", &stored);
        if resource == "jobs" {
            let behaviour = (self.state().script)(&stored);
            let cluster = self.clone();
            tokio::spawn(async move { cluster.play(name, behaviour).await });
        }
        created(stored)
    }

    fn delete(&self, resource: &str, name: &str, options: &Value) -> Response<FakeBody> {
        let Some(mut object) = self.object(resource, name) else {
            return status(404, &format!("{resource} \"{name}\" not found"));
        };
        if resource == "jobs" && options["propagationPolicy"] == "Foreground" {
            // The Job stays, marked, until its pods are gone.
            object["metadata"]["deletionTimestamp"] = json!("2026-11-30T12:00:09Z");
            object["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
            self.put(resource, object.clone());
            let marked = self.object(resource, name).unwrap_or(Value::Null);
            self.notify(resource, "MODIFIED", &marked);
            let cluster = self.clone();
            let name = name.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                cluster.remove("jobs", &name);
            });
            return ok(marked);
        }
        self.remove(resource, name);
        ok(object)
    }

    fn remove(&self, resource: &str, name: &str) {
        let removed = self
            .state()
            .objects
            .remove(&(resource.to_owned(), name.to_owned()));
        if let Some(object) = removed {
            if resource == "jobs" {
                for pod in self.names("pods") {
                    let owned = self
                        .object("pods", &pod)
                        .is_some_and(|pod| pod["metadata"]["labels"][JOB_NAME_LABEL] == name);
                    if owned {
                        self.state().objects.remove(&("pods".to_owned(), pod));
                    }
                }
            }
            self.notify(resource, "DELETED", &object);
        }
    }

    /// How many lists of Job `job`'s pods were asked for.
    fn pod_lists(&self, job: &str) -> usize {
        let selector = format!("{JOB_NAME_LABEL}={job}");
        self.state()
            .requests
            .iter()
            .filter(|request| {
                request.method == "GET"
                    && request.path.ends_with("/pods")
                    && request.query.get("labelSelector") == Some(&selector)
            })
            .count()
    }

    /// Plays the kubelet for Job `name`.
    async fn play(&self, name: String, behaviour: Behaviour) {
        let Some(job) = self.object("jobs", &name) else {
            return;
        };
        let template = &job["spec"]["template"];
        let container = template["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("main")
            .to_owned();
        let pod_name = format!("{name}-x7k2p");
        let mut labels = template["metadata"]["labels"].clone();
        labels[JOB_NAME_LABEL] = json!(name);
        let pod = |state: Value, reason: Option<(&str, &str)>| {
            let mut status = json!({"phase": "Running", "containerStatuses": [
                {"name": container, "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": state}]});
            if let Some((reason, message)) = reason {
                status["reason"] = json!(reason);
                status["message"] = json!(message);
                status["phase"] = json!("Failed");
            }
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": job["metadata"]["namespace"],
                    "labels": labels, "creationTimestamp": "2026-11-30T12:00:01Z"},
                "spec": template["spec"], "status": status})
        };
        let terminated = |code: i32, reason: &str| {
            json!({"terminated": {"exitCode": code, "reason": reason,
                "startedAt": "2026-11-30T12:00:02Z", "finishedAt": "2026-11-30T12:00:05Z"}})
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        // What the container writes while it runs (an executed one's, once it exits).
        let early_log = match &behaviour {
            Behaviour::Exit { log, .. } => Some(log.clone()),
            Behaviour::Deadline => Some("still working\n".to_owned()),
            Behaviour::OutOfMemory => Some("allocating\n".to_owned()),
            Behaviour::Hangs => Some(String::new()),
            _ => None,
        };
        if let Some(log) = early_log {
            self.state().logs.insert(pod_name.clone(), log.into_bytes());
        }
        let first = if matches!(behaviour, Behaviour::NeverStarts) {
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
        } else {
            json!({"running": {"startedAt": "2026-11-30T12:00:02Z"}})
        };
        self.put("pods", pod(first, None));
        let seen_before = self.pod_lists(&name);
        // A run that reaches its deadline runs until its pod was seen running (or waiting) by
        // a client listing the Job's pods, or for 5 s.
        let deadline = matches!(behaviour, Behaviour::Deadline | Behaviour::NeverStarts);
        if deadline {
            for _ in 0..500 {
                if self.pod_lists(&name) > seen_before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let mut pod_deleted = deadline;
        let (pod_state, condition, log) = match behaviour {
            Behaviour::Hangs => return,
            Behaviour::Exit { code, log, files } => {
                if !files.is_empty() {
                    self.collect_files(template, &files);
                }
                let reason = if code == 0 { "Completed" } else { "Error" };
                let condition = if code == 0 {
                    ("Complete", "", "")
                } else {
                    JOB_FAILED
                };
                (pod(terminated(code, reason), None), condition, log)
            }
            Behaviour::OutOfMemory => (
                pod(terminated(137, "OOMKilled"), None),
                JOB_FAILED,
                "allocating\n".to_owned(),
            ),
            Behaviour::Deadline => (
                pod(terminated(137, "Error"), Some(POD_PAST_DEADLINE)),
                JOB_PAST_DEADLINE,
                "still working\n".to_owned(),
            ),
            Behaviour::NeverStarts => (
                pod(
                    json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}),
                    None,
                ),
                JOB_PAST_DEADLINE,
                String::new(),
            ),
            Behaviour::Evicted => (
                pod(
                    terminated(137, "Error"),
                    Some(("Evicted", "The node was low on resource: memory.")),
                ),
                JOB_FAILED,
                String::new(),
            ),
            Behaviour::Probe {
                reaches,
                unexpected,
                marker_missing,
            } => self.probe(
                template,
                reaches,
                (unexpected, marker_missing),
                &pod,
                &terminated,
            ),
            Behaviour::Execute => {
                let deadline = job["spec"]["activeDeadlineSeconds"].as_u64().unwrap_or(600);
                match self
                    .execute(&name, template, Duration::from_secs(deadline))
                    .await
                {
                    Ok(Some((code, log))) => {
                        let condition = if code == 0 {
                            ("Complete", "", "")
                        } else {
                            JOB_FAILED
                        };
                        let reason = if code == 0 { "Completed" } else { "Error" };
                        (
                            pod(terminated(code, reason), None),
                            condition,
                            String::from_utf8_lossy(&log).into_owned(),
                        )
                    }
                    Ok(None) => (
                        pod(terminated(137, "Error"), Some(POD_PAST_DEADLINE)),
                        JOB_PAST_DEADLINE,
                        String::new(),
                    ),
                    Err(error) => (
                        pod(
                            json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": error}}),
                            None,
                        ),
                        JOB_FAILED,
                        String::new(),
                    ),
                }
            }
        };
        if !log.is_empty() || !self.state().logs.contains_key(&pod_name) {
            self.state().logs.insert(pod_name.clone(), log.into_bytes());
        }
        // Since Kubernetes 1.31 the Job controller deletes the pods of a Job past its deadline
        // before it reports the Job failed.
        pod_deleted |= condition.1 == "DeadlineExceeded";
        if pod_deleted {
            self.state()
                .objects
                .remove(&("pods".to_owned(), pod_name.clone()));
        } else {
            self.put("pods", pod_state);
        }
        let Some(mut job) = self.object("jobs", &name) else {
            return;
        };
        if job["metadata"]["deletionTimestamp"].is_string() {
            return;
        }
        let (kind, reason, message) = condition;
        job["status"] = json!({"conditions": [{"type": kind, "status": "True",
            "reason": reason, "message": message}]});
        self.put("jobs", job);
        let updated = self.object("jobs", &name).unwrap_or(Value::Null);
        self.notify("jobs", "MODIFIED", &updated);
    }

    /// The folder of claim `name`.
    fn claim_folder(&self, name: &str) -> PathBuf {
        let state = self.state();
        if name == state.claim_name {
            state.claim_root.clone()
        } else {
            state.other_claims.path().join(name)
        }
    }

    /// Runs the pod's container on this machine, in bubblewrap, until it exits, its Job is
    /// deleted, or `deadline` passes (`None`); returns its exit status and its output.
    async fn execute(
        &self,
        job: &str,
        template: &Value,
        deadline: Duration,
    ) -> Result<Option<(i32, Vec<u8>)>, String> {
        let spec = &template["spec"];
        let container = &spec["containers"][0];
        let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        let scratch = tempfile::tempdir().map_err(|error| error.to_string())?;
        let mut args: Vec<String> = [
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--clearenv",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let name = mount["name"].as_str().unwrap_or_default();
            let volume = volumes
                .iter()
                .find(|volume| volume["name"] == name)
                .ok_or_else(|| format!("no volume {name}"))?;
            let (folder, volume_read_only) =
                if let Some(claim) = volume["persistentVolumeClaim"].as_object() {
                    let claim_name = claim["claimName"].as_str().unwrap_or_default();
                    (
                        self.claim_folder(claim_name),
                        claim
                            .get("readOnly")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    )
                } else if volume["emptyDir"].is_object() {
                    (scratch.path().join(name), false)
                } else {
                    return Err(format!(
                        "volume {name}: only claims and emptyDir are played"
                    ));
                };
            let source = match mount["subPath"].as_str() {
                Some(sub_path) => folder.join(sub_path),
                None => folder,
            };
            std::fs::create_dir_all(&source).map_err(|error| error.to_string())?;
            let read_only = volume_read_only || mount["readOnly"] == true;
            args.push(if read_only { "--ro-bind" } else { "--bind" }.to_owned());
            args.push(source.to_string_lossy().into_owned());
            args.push(mount["mountPath"].as_str().unwrap_or_default().to_owned());
        }
        for variable in container["env"].as_array().into_iter().flatten() {
            args.push("--setenv".to_owned());
            args.push(variable["name"].as_str().unwrap_or_default().to_owned());
            args.push(variable["value"].as_str().unwrap_or_default().to_owned());
        }
        if let Some(folder) = container["workingDir"].as_str() {
            args.push("--chdir".to_owned());
            args.push(folder.to_owned());
        }
        args.push("--".to_owned());
        args.extend(
            container["command"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
        let log_path = scratch.path().join("container.log");
        let log = std::fs::File::create(&log_path).map_err(|error| error.to_string())?;
        let bwrap = self.state().bwrap.clone();
        let mut child = tokio::process::Command::new(bwrap)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|error| error.to_string())?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("cannot start bwrap: {error}"))?;
        let started = tokio::time::Instant::now();
        loop {
            tokio::select! {
                status = child.wait() => {
                    let status = status.map_err(|error| error.to_string())?;
                    let code = status.code().unwrap_or_else(|| {
                        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(9)
                    });
                    let output = std::fs::read(&log_path).unwrap_or_default();
                    return Ok(Some((code, output)));
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    let deleting = self
                        .object("jobs", job)
                        .is_none_or(|job| job["metadata"]["deletionTimestamp"].is_string());
                    if deleting {
                        let _ = child.kill().await;
                        return Ok(Some((137, std::fs::read(&log_path).unwrap_or_default())));
                    }
                    if started.elapsed() >= deadline {
                        let _ = child.kill().await;
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn probe(
        &self,
        template: &Value,
        reaches: bool,
        (unexpected, marker_missing): (i32, i32),
        pod: &PodOf<'_>,
        terminated: &dyn Fn(i32, &str) -> Value,
    ) -> (Value, Condition, String) {
        let script = template["spec"]["containers"][0]["command"][2]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (enforced, unreachable, root) = {
            let state = self.state();
            (
                state.network_policy_enforced,
                state.unreachable,
                state.claim_root.clone(),
            )
        };
        let mut log = String::new();
        if let Some(marker) = script
            .split("/workspace/")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        {
            match std::fs::read_to_string(root.join(marker)) {
                Ok(text) => log.push_str(&format!("{text}\n")),
                Err(_) => {
                    return (
                        pod(terminated(marker_missing, "Error"), None),
                        ("Failed", "BackoffLimitExceeded", ""),
                        "cat: can't open\n".to_owned(),
                    );
                }
            }
        }
        let isolated = !reaches;
        let reached = !(unreachable || isolated && enforced);
        let code = if reached == reaches { 0 } else { unexpected };
        log.push_str(if reached {
            "reached\n"
        } else {
            "unreachable\n"
        });
        let condition = if code == 0 {
            ("Complete", "", "")
        } else {
            ("Failed", "BackoffLimitExceeded", "")
        };
        (
            pod(
                terminated(code, if code == 0 { "Completed" } else { "Error" }),
                None,
            ),
            condition,
            log,
        )
    }

    /// Writes `files` where the pod's `/collected` mount points inside the claim.
    fn collect_files(&self, template: &Value, files: &[(String, Vec<u8>)]) {
        let mounts = template["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(sub_path) = mounts
            .iter()
            .find(|mount| mount["mountPath"] == "/collected")
            .and_then(|mount| mount["subPath"].as_str())
        else {
            return;
        };
        let folder = self.state().claim_root.join(sub_path);
        for (name, bytes) in files {
            std::fs::write(folder.join(name), bytes).expect("the collector's copy");
        }
    }
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn ok(value: Value) -> Response<FakeBody> {
    json_response(StatusCode::OK, &value)
}

fn created(value: Value) -> Response<FakeBody> {
    json_response(StatusCode::CREATED, &value)
}

fn status(code: u16, message: &str) -> Response<FakeBody> {
    let reason = match code {
        404 => "NotFound",
        409 => "AlreadyExists",
        403 => "Forbidden",
        422 => "Invalid",
        _ => "InternalError",
    };
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}),
    )
}

fn json_response(code: StatusCode, value: &Value) -> Response<FakeBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(serde_json::to_vec(value).unwrap_or_default())).boxed_unsync(),
    );
    *response.status_mut() = code;
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
}
