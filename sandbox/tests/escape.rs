//! Each way out of a job's sandbox, tried by a real program (Python, as a consumer's algorithm
//! would be) in a real sandbox: every attempt must be contained, and the outcome must say how the
//! job ended. Needs bubblewrap, a cgroup memory controller and `/usr/bin/python3`
//! (`script/test.sh` installs bubblewrap).

use std::{os::unix::fs::PermissionsExt, path::PathBuf, time::Duration};

use insitu_sandbox::{
    Egress, EgressUse, Ending, Isolation, JobSpec, Limits, Mount, Outcome, Sandbox, SandboxConfig,
    confine::LandlockStatus,
};

const PYTHON: &str = "/usr/bin/python3";

fn config() -> SandboxConfig {
    SandboxConfig {
        grace: Duration::from_secs(1),
        poll: Duration::from_millis(100),
        cgroup_folder: "insitu-test-jobs".into(),
        ..SandboxConfig::new(PathBuf::from(env!("CARGO_BIN_EXE_insitu-sandbox-init")))
    }
}

async fn sandbox() -> (Sandbox, Isolation) {
    let config = config();
    let isolation = insitu_sandbox::probe(&config).await;
    let sandbox = Sandbox::new(config, &isolation).unwrap_or_else(|error| {
        panic!("this machine must run jobs ({error}); isolation: {isolation:#?}")
    });
    (sandbox, isolation)
}

/// A job's folders on the host: inputs (readable by the jobs' account only through its group),
/// the algorithm, an empty output folder and the log.
struct Folders {
    root: tempfile::TempDir,
}

impl Folders {
    fn new(sandbox: &Sandbox) -> Self {
        let root = tempfile::tempdir().unwrap();
        for folder in ["input", "algorithm", "output"] {
            std::fs::create_dir(root.path().join(folder)).unwrap();
        }
        std::fs::write(root.path().join("input/data.csv"), "x,y\n1,2\n3,4\n").unwrap();
        let folders = Self { root };
        folders.share(sandbox);
        folders
    }

    /// Lets the jobs' account read the job's folders (group read, nobody else).
    fn share(&self, sandbox: &Sandbox) {
        let gid = sandbox.job_account().map(|(_, gid)| gid);
        for path in [
            self.root.path().to_path_buf(),
            self.path("input"),
            self.path("input/data.csv"),
            self.path("algorithm"),
        ] {
            std::os::unix::fs::chown(&path, None, gid).unwrap();
            let mode = if path.is_dir() { 0o750 } else { 0o640 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn spec(&self, sandbox: &Sandbox, name: &str, program: &str, limits: Limits) -> JobSpec {
        let script = self.path("algorithm/main.py");
        std::fs::write(&script, program).unwrap();
        self.share(sandbox);
        std::os::unix::fs::chown(&script, None, sandbox.job_account().map(|(_, gid)| gid)).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o640)).unwrap();
        JobSpec {
            name: format!("{name}-{}", std::process::id()),
            command: vec![PYTHON.into(), "/algorithm/main.py".into()],
            read_only: vec![
                Mount {
                    host: self.path("input"),
                    inside: PathBuf::from("/data"),
                },
                Mount {
                    host: self.path("algorithm"),
                    inside: PathBuf::from("/algorithm"),
                },
            ],
            output: self.path("output"),
            log: self.path("job.log"),
            env: vec![("INSITU_JOB".into(), name.into())],
            limits,
            egress: None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("job.log")).unwrap_or_default()
    }
}

fn quick() -> Limits {
    Limits {
        wall_secs: 60,
        memory_mb: 128,
        pids: 32,
        output_mb: 8,
        ..Limits::default()
    }
}

async fn run(
    sandbox: &Sandbox,
    folders: &Folders,
    name: &str,
    program: &str,
    limits: Limits,
) -> Outcome {
    let job = sandbox
        .start(folders.spec(sandbox, name, program, limits))
        .await
        .unwrap();
    let outcome = job.wait().await;
    eprintln!("{name}: {outcome:?}\n{}", folders.log());
    outcome
}

/// No cgroup of the test is left once its jobs ended.
fn assert_no_group_left(name: &str) {
    let pattern = format!("{name}-{}", std::process::id());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    for line in mounts.lines().filter(|line| line.contains("cgroup")) {
        let point = line.split_whitespace().nth(1).unwrap();
        let found = std::process::Command::new("find")
            .args([point, "-maxdepth", "6", "-type", "d", "-name", &pattern])
            .output()
            .unwrap();
        assert!(
            found.stdout.is_empty(),
            "cgroup left: {}",
            String::from_utf8_lossy(&found.stdout)
        );
    }
}

#[tokio::test]
async fn probe_reports_the_mechanisms_and_the_minimum_is_met() {
    let (_, isolation) = sandbox().await;
    assert!(
        isolation
            .bwrap
            .as_deref()
            .unwrap()
            .starts_with("bubblewrap")
    );
    assert!(isolation.namespaces && isolation.network_isolated && isolation.memory_limit);
    assert!(isolation.seccomp, "{isolation:?}");
    assert!(
        matches!(
            isolation.landlock,
            Some(LandlockStatus::Full | LandlockStatus::Partial)
        ),
        "{isolation:?}"
    );
    assert!(isolation.pids_limit, "{isolation:?}");
    if rustix::process::geteuid().is_root() {
        assert_eq!(isolation.job_uid, 65534);
    }
    isolation.ensure_minimum().unwrap();
    let missing = Isolation {
        memory_limit: false,
        ..isolation.clone()
    };
    assert!(
        missing
            .ensure_minimum()
            .unwrap_err()
            .contains("memory limit")
    );
    let no_bwrap = Isolation {
        namespaces: false,
        ..isolation
    };
    assert!(
        no_bwrap
            .ensure_minimum()
            .unwrap_err()
            .contains("bubblewrap")
    );
}

#[tokio::test]
async fn a_machine_without_bubblewrap_is_refused_with_a_clear_message() {
    let config = SandboxConfig {
        bwrap: PathBuf::from("/nonexistent/bwrap"),
        ..config()
    };
    let isolation = insitu_sandbox::probe(&config).await;
    assert!(!isolation.namespaces);
    let error = Sandbox::new(config, &isolation).unwrap_err().to_string();
    assert!(
        error.contains("compute is refused") && error.contains("bubblewrap"),
        "{error}"
    );
}

#[tokio::test]
async fn groups_left_by_an_earlier_keeper_are_swept() {
    // A sandbox of its own folder, so that other tests' jobs are not swept.
    let config = SandboxConfig {
        cgroup_folder: format!("insitu-sweep-{}", std::process::id()),
        ..config()
    };
    let isolation = insitu_sandbox::probe(&config).await;
    let sandbox = Sandbox::new(config.clone(), &isolation).unwrap();
    let folders = Folders::new(&sandbox);
    let job = sandbox
        .start(folders.spec(
            &sandbox,
            "orphan",
            "import time\ntime.sleep(10**6)",
            quick(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The keeper dies without cleaning up: the job's processes and group stay.
    std::mem::forget(job);
    let again = Sandbox::new(config, &isolation).unwrap();
    assert_eq!(again.sweep().await, 1);
    assert_no_group_left("orphan");
    assert_eq!(again.sweep().await, 0);
    // The test's own jobs' folder goes too.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    for line in mounts.lines().filter(|line| line.contains("cgroup")) {
        let point = line.split_whitespace().nth(1).unwrap();
        let folder = format!("insitu-sweep-{}", std::process::id());
        let _ = std::process::Command::new("find")
            .args([
                point,
                "-maxdepth",
                "6",
                "-type",
                "d",
                "-name",
                &folder,
                "-delete",
            ])
            .status();
    }
}

#[tokio::test]
async fn a_job_reads_its_input_writes_its_output_and_its_logs_are_kept() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
import csv, json, os
rows = list(csv.DictReader(open("/data/data.csv")))
total = sum(int(row["x"]) for row in rows)
json.dump({"rows": len(rows), "sum_x": total, "job": os.environ["INSITU_JOB"],
           "uid": os.getuid(), "cwd": os.getcwd(), "env": sorted(os.environ)},
          open("/output/result.json", "w"))
print("done", total)
"##;
    let outcome = run(&sandbox, &folders, "happy", program, quick()).await;
    assert_eq!(outcome.ending, Ending::Succeeded);
    assert_eq!(outcome.exit_code, Some(0));
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folders.path("output/result.json")).unwrap())
            .unwrap();
    assert_eq!(result["rows"], 2);
    assert_eq!(result["sum_x"], 4);
    assert_eq!(result["job"], "happy");
    assert_eq!(result["uid"], 65534);
    assert_eq!(result["cwd"], "/output");
    // The environment is cleared: only what the sandbox sets and the job's own variable.
    assert_eq!(
        result["env"],
        serde_json::json!(["HOME", "INSITU_JOB", "LANG", "PATH", "PWD", "TMPDIR"])
    );
    assert!(folders.log().contains("done 4"));
    assert!(outcome.output_bytes > 0 && !outcome.log_truncated);
    assert_no_group_left("happy");
}

#[tokio::test]
async fn no_network_of_any_kind() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
import socket
reached = []
for family, kind, target in [
    (socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 80)),
    (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 22)),
    (socket.AF_INET6, socket.SOCK_STREAM, ("::1", 22)),
    (socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53)),
]:
    try:
        s = socket.socket(family, kind)
        s.settimeout(2)
        s.connect(target)
        s.send(b"x")
        reached.append(str(target))
    except OSError as error:
        print("blocked", target, error)
for family in [getattr(socket, "AF_NETLINK", 16), getattr(socket, "AF_PACKET", 17)]:
    try:
        socket.socket(family, socket.SOCK_RAW)
        reached.append("raw %d" % family)
    except OSError as error:
        print("blocked family", family, error)
print("interfaces", open("/proc/net/dev").read().count(":"))
raise SystemExit(3 if reached else 0)
"##;
    let outcome = run(&sandbox, &folders, "network", program, quick()).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{}", folders.log());
    assert_eq!(folders.log().matches("blocked").count(), 6);
    assert!(folders.log().contains("interfaces 1"));
}

/// A TCP server on the host that answers each connection with what it read, upper-cased, and
/// keeps what it was sent.
async fn aggregator() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut line = vec![0_u8; 64];
                let read = stream.read(&mut line).await.unwrap_or(0);
                line.truncate(read);
                let _ = stream.write_all(&line.to_ascii_uppercase()).await;
                let _ = sender.send(line);
            });
        }
    });
    (address, received)
}

#[tokio::test]
async fn a_job_with_an_egress_reaches_its_one_destination_and_nothing_else() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let (to, mut received) = aggregator().await;
    // The host's other listener, which the job must not reach, on the host's loopback.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    let program = format!(
        r##"
import socket
s = socket.create_connection(("127.0.0.1", 7000), timeout=10)
s.sendall(b"model update")
s.shutdown(socket.SHUT_WR)
answer = b""
while chunk := s.recv(64):
    answer += chunk
print("answer", answer.decode())
reached = []
for family, kind, target in [
    (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", {other_port})),
    (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", {aggregator_port})),
    (socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 80)),
    (socket.AF_INET, socket.SOCK_STREAM, ("10.0.0.1", 80)),
    (socket.AF_INET6, socket.SOCK_STREAM, ("2606:4700::1111", 443)),
    (socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53)),
]:
    try:
        t = socket.socket(family, kind)
        t.settimeout(2)
        t.connect(target)
        t.send(b"raw data")
        reached.append(str(target))
    except OSError as error:
        print("blocked", target, error)
try:
    socket.getaddrinfo("example.com", 443)
    reached.append("dns")
except OSError as error:
    print("blocked dns", error)
for family in [getattr(socket, "AF_NETLINK", 16), getattr(socket, "AF_PACKET", 17)]:
    try:
        socket.socket(family, socket.SOCK_RAW)
        reached.append("raw %d" % family)
    except OSError as error:
        print("blocked family", family, error)
print("interfaces", open("/proc/net/dev").read().count(":"))
raise SystemExit(3 if reached else 0)
"##,
        aggregator_port = to.port()
    );
    let mut spec = folders.spec(&sandbox, "egress", &program, quick());
    spec.egress = Some(Egress { port: 7000, to });
    let outcome = sandbox.start(spec).await.unwrap().wait().await;
    let log = folders.log();
    eprintln!("egress: {outcome:?}\n{log}");
    assert_eq!(outcome.ending, Ending::Succeeded, "{log}");
    assert!(log.contains("answer MODEL UPDATE"), "{log}");
    assert_eq!(log.matches("blocked").count(), 9, "{log}");
    assert!(log.contains("interfaces 1"), "{log}");
    assert_eq!(received.recv().await.unwrap(), b"model update");
    assert!(
        received.try_recv().is_err(),
        "one connection, through the egress"
    );
    assert_eq!(
        outcome.egress,
        Some(EgressUse {
            sent_bytes: 12,
            received_bytes: 12,
            connections: 1
        })
    );
    // Nothing reached the host's other listener.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), other.accept())
            .await
            .is_err()
    );
    assert_no_group_left("egress");
}

#[tokio::test]
async fn an_egress_without_a_port_or_destination_is_refused() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    for (egress, expected) in [
        (
            Egress {
                port: 0,
                to: "127.0.0.1:8000".parse().unwrap(),
            },
            "a port inside",
        ),
        (
            Egress {
                port: 7000,
                to: "127.0.0.1:0".parse().unwrap(),
            },
            "an address and a port",
        ),
        (
            Egress {
                port: 7000,
                to: "0.0.0.0:8000".parse().unwrap(),
            },
            "an address and a port",
        ),
    ] {
        let mut spec = folders.spec(&sandbox, "bad-egress", "print(1)", quick());
        spec.egress = Some(egress);
        let error = sandbox.start(spec).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
    assert_no_group_left("bad-egress");
}

#[tokio::test]
async fn inputs_and_the_algorithm_are_read_only() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let before = std::fs::read(folders.path("input/data.csv")).unwrap();
    let program = r##"
import os
changed = []
for attempt in [
    lambda: open("/data/data.csv", "a").write("9,9\n"),
    lambda: open("/data/new.csv", "w").write("x"),
    lambda: os.remove("/data/data.csv"),
    lambda: os.rename("/data/data.csv", "/data/moved.csv"),
    lambda: os.chmod("/data/data.csv", 0o777),
    lambda: open("/algorithm/main.py", "a").write("#"),
    lambda: os.symlink("/data/data.csv", "/data/link"),
]:
    try:
        attempt()
        changed.append(attempt)
    except OSError as error:
        print("refused", error)
raise SystemExit(3 if changed else 0)
"##;
    let outcome = run(&sandbox, &folders, "readonly", program, quick()).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{}", folders.log());
    assert_eq!(folders.log().matches("refused").count(), 7);
    assert_eq!(
        std::fs::read(folders.path("input/data.csv")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read_dir(folders.path("input")).unwrap().count(),
        1,
        "nothing added to the input"
    );
}

#[tokio::test]
async fn the_keepers_files_its_key_and_the_host_are_out_of_sight() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    // A key file of the keeper's and a file anybody on the host may read.
    let secret = tempfile::tempdir().unwrap();
    let key = secret.path().join("keeper.key");
    std::fs::write(&key, "0xsecret").unwrap();
    let public = secret.path().join("public.txt");
    std::fs::write(&public, "host file").unwrap();
    std::fs::set_permissions(secret.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    let program = format!(
        r##"
import os
seen = []
for path in [{key:?}, {public:?}, "/etc/passwd", "/etc/shadow", "/root", "/home",
             "/proc/1/environ", "/proc/1/root/etc/passwd", "/sys/fs/cgroup", "/var/lib",
             {data_root:?}]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path).read()
        seen.append(path)
    except OSError as error:
        print("hidden", path, type(error).__name__)
# The only processes in sight are the sandbox's own.
print("processes", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print("seen", seen)
raise SystemExit(3 if seen else 0)
"##,
        key = key.display().to_string(),
        public = public.display().to_string(),
        data_root = folders.path("input").display().to_string(),
    );
    let outcome = run(&sandbox, &folders, "secrets", &program, quick()).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{}", folders.log());
    assert_eq!(folders.log().matches("hidden").count(), 11);
    // bubblewrap's reaper (1), the supervisor (2) and the job (3): nothing of the host.
    assert!(
        folders.log().contains("processes [1, 2, 3]"),
        "{}",
        folders.log()
    );
}

#[tokio::test]
async fn a_job_cannot_read_another_jobs_output() {
    let (sandbox, _) = sandbox().await;
    let first = Folders::new(&sandbox);
    let outcome = run(
        &sandbox,
        &first,
        "first",
        "open('/output/private.txt', 'w').write('mine')",
        quick(),
    )
    .await;
    assert_eq!(outcome.ending, Ending::Succeeded);
    let second = Folders::new(&sandbox);
    let program = format!(
        r##"
import os
try:
    print(open({path:?}).read())
    raise SystemExit(3)
except OSError as error:
    print("hidden", type(error).__name__)
try:
    os.listdir({folder:?})
    raise SystemExit(4)
except OSError as error:
    print("hidden", type(error).__name__)
"##,
        path = first.path("output/private.txt").display().to_string(),
        folder = first.path("output").display().to_string(),
    );
    let outcome = run(&sandbox, &second, "second", &program, quick()).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{}", second.log());
    assert_eq!(second.log().matches("hidden").count(), 2);
    // On the host, a job's output belongs to the jobs' account alone.
    let mode = std::fs::metadata(first.path("output"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0);
}

#[tokio::test]
async fn only_regular_files_and_folders_can_be_left_as_results() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
import os, socket
made = []
for name, call in [
    ("symlink", lambda: os.symlink("/etc/hostname", "/output/link")),
    ("fifo", lambda: os.mkfifo("/output/fifo")),
    ("socket", lambda: socket.socket(socket.AF_UNIX).bind("/output/sock")),
]:
    try:
        call()
        made.append(name)
    except OSError as error:
        print("refused", name, error)
os.mkdir("/output/folder")
open("/output/folder/file.txt", "w").write("ok")
# /tmp takes any kind of file.
os.symlink("/tmp/a", "/tmp/b")
raise SystemExit(3 if made else 0)
"##;
    let outcome = run(&sandbox, &folders, "results", program, quick()).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{}", folders.log());
    assert_eq!(folders.log().matches("refused").count(), 3);
    assert_eq!(
        std::fs::read_to_string(folders.path("output/folder/file.txt")).unwrap(),
        "ok"
    );
}

#[tokio::test]
async fn a_stopped_job_gets_sigterm_and_the_grace_to_finish() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
import signal, sys, time
def finish(number, frame):
    open("/output/partial.txt", "w").write("saved on SIGTERM")
    print("terminated cleanly", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, finish)
print("up", flush=True)
time.sleep(10**6)
"##;
    let job = sandbox
        .start(folders.spec(&sandbox, "graceful", program, quick()))
        .await
        .unwrap();
    // A stop asked before anybody waits still counts.
    job.stopper().stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outcome = job.wait().await;
    assert_eq!(outcome.ending, Ending::Stopped);
    assert!(
        folders.log().contains("terminated cleanly"),
        "{}",
        folders.log()
    );
    assert_eq!(
        std::fs::read_to_string(folders.path("output/partial.txt")).unwrap(),
        "saved on SIGTERM"
    );
    assert_no_group_left("graceful");
}

#[tokio::test]
async fn dropping_a_running_job_kills_it() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let job = sandbox
        .start(folders.spec(
            &sandbox,
            "dropped",
            "import time\ntime.sleep(10**6)",
            quick(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(job);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_group_left("dropped");
}

#[tokio::test]
async fn namespaces_mounts_and_tracing_are_refused_inside() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
allowed = []
for name, call in [
    ("unshare user", lambda: libc.unshare(0x10000000)),
    ("unshare net", lambda: libc.unshare(0x40000000)),
    ("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
    ("ptrace", lambda: libc.ptrace(16, 1, None, None)),
    ("chroot", lambda: libc.chroot(b"/tmp")),
]:
    if call() == 0:
        allowed.append(name)
    else:
        print("refused", name, os.strerror(ctypes.get_errno()))
# Refused by the seccomp filter itself: the error is EPERM (or ENOSYS for clone3) where the
# kernel would otherwise answer something else (EINVAL, EFAULT, ...).
libc.syscall.restype = ctypes.c_long
for name, number, args, expected in [
    ("clone newuser", 56, (0x10000000 | 17, 0, 0, 0, 0), 1),
    ("clone newnet", 56, (0x40000000 | 17, 0, 0, 0, 0), 1),
    ("bpf", 321, (0, 0, 0), 1),
    ("io_uring_setup", 425, (1, 0), 1),
    ("keyctl", 250, (0, 0, 0, 0, 0), 1),
    ("perf_event_open", 298, (0, 0, -1, -1, 0), 1),
    ("clone3", 435, (0, 0), 38),
    # x32 numbers would pass a filter written for x86-64 ones: a filter of their own refuses
    # them all (the kernel alone, with x32 off, would answer ENOSYS).
    ("x32 unshare", 0x40000000 | 272, (0x10000000,), 1),
    ("x32 getpid", 0x40000000 | 39, (), 1),
]:
    result = libc.syscall(number, *[ctypes.c_long(arg) for arg in args])
    error = ctypes.get_errno()
    if result != -1 or error != expected:
        allowed.append(name)
        print("NOT FILTERED", name, result, error)
    else:
        print("filtered", name, os.strerror(error))
# A socket for local IPC still works (multiprocessing needs it).
import socket
socket.socketpair()
print("unix sockets work")
# A plain fork still works.
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("fork works")
raise SystemExit(3 if allowed else 0)
"##;
    let outcome = run(&sandbox, &folders, "syscalls", program, quick()).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{}", folders.log());
    assert_eq!(folders.log().matches("refused").count(), 5);
    assert_eq!(folders.log().matches("filtered").count(), 9);
    assert!(folders.log().contains("fork works"));
    assert!(folders.log().contains("unix sockets work"));
}

#[tokio::test]
async fn a_fork_bomb_is_held_by_the_process_limit() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
import os, time
failures = 0
for _ in range(2000):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    except OSError:
        failures += 1
print("fork refused", failures, "times", flush=True)
os._exit(7 if failures else 0)
"##;
    let limits = Limits {
        pids: 16,
        wall_secs: 20,
        ..quick()
    };
    let outcome = run(&sandbox, &folders, "forkbomb", program, limits).await;
    assert_eq!(outcome.ending, Ending::Failed, "{}", folders.log());
    assert_eq!(outcome.exit_code, Some(7));
    assert!(folders.log().contains("fork refused"));
    // Its children, still sleeping when it exited, were killed with it.
    assert_no_group_left("forkbomb");
}

#[tokio::test]
async fn a_memory_bomb_is_killed_and_reported() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
chunks = []
while True:
    chunks.append(bytearray(16 * 1024 * 1024))
"##;
    let limits = Limits {
        memory_mb: 64,
        tmp_mb: 4,
        ..quick()
    };
    let outcome = run(&sandbox, &folders, "membomb", program, limits).await;
    assert_eq!(outcome.ending, Ending::OutOfMemory, "{outcome:?}");
    assert!(outcome.peak_memory_bytes.unwrap() <= 64 << 20);
}

#[tokio::test]
async fn an_output_filling_the_disk_is_stopped_at_its_limit() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    // One file past the largest size, then many files.
    let program = r##"
block = b"x" * (1024 * 1024)
import sys
sys.stderr = sys.stdout
try:
    with open("/output/one.bin", "wb") as file:
        for _ in range(100):
            file.write(block)
            file.flush()
except OSError as error:
    print("file too large:", error, flush=True)
index = 0
while True:
    with open("/output/part%d.bin" % index, "wb") as file:
        file.write(block)
    index += 1
"##;
    let limits = Limits {
        output_mb: 4,
        ..quick()
    };
    let outcome = run(&sandbox, &folders, "diskfill", program, limits).await;
    assert_eq!(outcome.ending, Ending::OutputTooLarge, "{outcome:?}");
    assert!(folders.log().contains("file too large"));
    assert!(folders.log().contains("No space left"), "{}", folders.log());
    // `/output` is a tmpfs of the limit's size: the host folder got at most that.
    assert!(outcome.output_bytes <= 4 << 20, "{outcome:?}");
}

#[tokio::test]
async fn a_file_deleted_while_open_cannot_fill_the_disk() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
import os
files = []
for index in range(8):
    files.append(open("/output/hidden%d.bin" % index, "wb"))
    os.unlink("/output/hidden%d.bin" % index)
written = 0
try:
    while True:
        for file in files:
            file.write(b"x" * (1024 * 1024))
            file.flush()
            written += 1
except OSError as error:
    print("stopped after", written, "MiB:", error, flush=True)
for file in files:
    try:
        file.close()
    except OSError:
        pass
open("/output/result.txt", "w").write("small")
"##;
    let limits = Limits {
        output_mb: 4,
        ..quick()
    };
    let outcome = run(&sandbox, &folders, "unlinked", program, limits).await;
    assert!(folders.log().contains("No space left"), "{}", folders.log());
    assert!(
        folders.log().contains("stopped after 4 MiB"),
        "{}",
        folders.log()
    );
    // The program ended well, with its small result copied out.
    assert_eq!(outcome.ending, Ending::Succeeded, "{outcome:?}");
    assert_eq!(
        std::fs::read_to_string(folders.path("output/result.txt")).unwrap(),
        "small"
    );
}

#[tokio::test]
async fn tmp_is_small_and_private() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
try:
    with open("/tmp/fill", "wb") as file:
        for _ in range(64):
            file.write(b"x" * (1024 * 1024))
            file.flush()
    raise SystemExit(3)
except OSError as error:
    print("tmp full:", error)
"##;
    let limits = Limits {
        tmp_mb: 4,
        ..quick()
    };
    let outcome = run(&sandbox, &folders, "tmpfill", program, limits).await;
    assert_eq!(outcome.ending, Ending::Succeeded, "{}", folders.log());
    assert!(folders.log().contains("No space left"));
}

#[tokio::test]
async fn a_mount_beneath_tmp_is_made_read_only_in_the_jobs_own_tmp() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    // A folder of the host's /tmp (as a tool's environment made there would be), mounted where
    // it is.
    let tool = tempfile::Builder::new()
        .prefix("insitu-tool-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(tool.path().join("tool.txt"), "from the host\n").unwrap();
    let gid = sandbox.job_account().map(|(_, gid)| gid);
    for path in [tool.path().to_path_buf(), tool.path().join("tool.txt")] {
        std::os::unix::fs::chown(&path, None, gid).unwrap();
        let mode = if path.is_dir() { 0o750 } else { 0o640 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let inside = tool.path().display().to_string();
    let program = format!(
        r##"
import os
print("read", open("{inside}/tool.txt").read().strip())
for attempt in [lambda: open("{inside}/tool.txt", "a"), lambda: open("{inside}/new.txt", "w")]:
    try:
        attempt()
        raise SystemExit(3)
    except OSError as error:
        print("blocked", error)
open("/tmp/scratch.txt", "w").write("mine")
print("tmp holds", sorted(os.listdir("/tmp")))
"##
    );
    let mut spec = folders.spec(&sandbox, "tmpmount", &program, quick());
    spec.read_only.push(Mount {
        host: tool.path().to_path_buf(),
        inside: tool.path().to_path_buf(),
    });
    let outcome = sandbox.start(spec).await.unwrap().wait().await;
    let log = folders.log();
    assert_eq!(outcome.ending, Ending::Succeeded, "{log}");
    assert!(log.contains("read from the host"), "{log}");
    assert_eq!(log.matches("blocked").count(), 2, "{log}");
    // The job's /tmp is its own: the host's other entries are not in it.
    let top = tool
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        log.contains(&format!("tmp holds ['{top}', 'scratch.txt']")),
        "{log}"
    );
    // And nothing was written to the host's folder.
    assert_eq!(std::fs::read_dir(tool.path()).unwrap().count(), 1);
    assert!(!std::path::Path::new("/tmp/scratch.txt").exists());
}

#[tokio::test]
async fn a_job_that_sleeps_forever_is_timed_out() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let limits = Limits {
        wall_secs: 2,
        ..quick()
    };
    let outcome = run(
        &sandbox,
        &folders,
        "sleeper",
        "import time\nprint('sleeping', flush=True)\ntime.sleep(10**6)",
        limits,
    )
    .await;
    assert_eq!(outcome.ending, Ending::TimedOut);
    assert!(folders.log().contains("sleeping"));
    assert_no_group_left("sleeper");
}

#[tokio::test]
async fn a_job_ignoring_sigterm_is_killed_after_the_grace() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let program = r##"
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
# A child that ignores it too, in its own session.
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(10**6)
print("ignoring", flush=True)
time.sleep(10**6)
"##;
    let limits = Limits {
        wall_secs: 2,
        ..quick()
    };
    let outcome = run(&sandbox, &folders, "stubborn", program, limits).await;
    assert_eq!(outcome.ending, Ending::TimedOut);
    // SIGTERM came at the wall time, SIGKILL only after the grace (one second here).
    assert!(outcome.wall_ms >= 3000, "{outcome:?}");
    assert!(folders.log().contains("ignoring"));
    assert_no_group_left("stubborn");
}

#[tokio::test]
async fn a_job_is_stopped_on_request() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let job = sandbox
        .start(folders.spec(
            &sandbox,
            "stopped",
            "import time\nprint('up', flush=True)\ntime.sleep(10**6)",
            quick(),
        ))
        .await
        .unwrap();
    let stopper = job.stopper();
    let waiting = tokio::spawn(job.wait());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stopper.stop();
    let outcome = waiting.await.unwrap();
    assert_eq!(outcome.ending, Ending::Stopped);
    assert_no_group_left("stopped");
}

#[tokio::test]
async fn logs_past_their_limit_are_dropped_and_said_so() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let limits = Limits {
        log_kb: 4,
        ..quick()
    };
    let outcome = run(
        &sandbox,
        &folders,
        "chatty",
        "import sys\nfor i in range(100000):\n    print('line', i)\nsys.stderr.write('end\\n')",
        limits,
    )
    .await;
    assert_eq!(outcome.ending, Ending::Succeeded);
    assert!(outcome.log_truncated && outcome.log_bytes > 100_000);
    let log = folders.log();
    assert!(log.len() < 4096 + 100, "{}", log.len());
    assert!(log.contains("were dropped"));
}

#[tokio::test]
async fn failing_jobs_and_bad_specs() {
    let (sandbox, _) = sandbox().await;
    let folders = Folders::new(&sandbox);
    let outcome = run(&sandbox, &folders, "fails", "raise SystemExit(4)", quick()).await;
    assert_eq!(outcome.ending, Ending::Failed);
    assert_eq!(outcome.exit_code, Some(4));

    let spec = |change: &dyn Fn(&mut JobSpec)| {
        let mut spec = folders.spec(&sandbox, "bad", "print(1)", quick());
        change(&mut spec);
        spec
    };
    let cases: Vec<(&str, JobSpec)> = vec![
        ("job name", spec(&|spec| spec.name = "../x".into())),
        ("no program", spec(&|spec| spec.command.clear())),
        ("limit", spec(&|spec| spec.limits.memory_mb = 0)),
        (
            "mount point",
            spec(&|spec| spec.read_only[0].inside = "/usr/lib".into()),
        ),
        (
            "mount point",
            spec(&|spec| spec.read_only[0].inside = "relative".into()),
        ),
        (
            "does not exist",
            spec(&|spec| spec.read_only[0].host = "/nonexistent".into()),
        ),
        (
            "environment name",
            spec(&|spec| spec.env.push(("A=B".into(), "x".into()))),
        ),
    ];
    for (expected, spec) in cases {
        let error = sandbox.start(spec).await.unwrap_err().to_string();
        assert!(error.contains(expected), "{error} should say {expected}");
    }
    // An output folder that is not empty is refused.
    std::fs::write(folders.path("output/old"), "x").unwrap();
    let error = sandbox
        .start(folders.spec(&sandbox, "dirty", "print(1)", quick()))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not empty"), "{error}");
    assert_no_group_left("bad");
}
