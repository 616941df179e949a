//! Runs an untrusted program (a consumer's algorithm) next to the data it may read, isolated and
//! limited, and reports how it ended.
//!
//! A job goes through four layers, each of which would contain it on its own for most escapes:
//!
//! 1. **bubblewrap**: every namespace unshared (no network interface but a down loopback, its own
//!    process ids, mounts, host name, IPC and cgroup view), all capabilities dropped, a cleared
//!    environment, only the system's `/usr` and the job's folders mounted: inputs and the
//!    algorithm read-only, a fresh output folder writable, `/tmp` a size-limited tmpfs.
//! 2. **An unprivileged account**: a keeper running as root launches the job as an account with
//!    no rights (`nobody` by default), so that even outside its namespaces it owns nothing.
//! 3. **A cgroup per job** (v2 where its memory controller is available, else v1): memory without
//!    swap, a process count (fork bombs), a CPU quota; plus rlimits (CPU time, file size, open
//!    files, no core dumps).
//! 4. **Landlock and seccomp**, applied inside the sandbox just before the program starts: file
//!    access only beneath the mounted folders, no TCP (unless the job has an egress), and no
//!    system calls that could reach the
//!    kernel's riskier surfaces (namespaces, mounts, ptrace, BPF, keyrings, io_uring, ...).
//!
//! The keeper watches each job: a wall-clock deadline (SIGTERM, a grace period, then SIGKILL of
//! every process of its cgroup), the size of its output folder, and its logs, of which it keeps
//! at most a fixed number of bytes. [`probe`] tells which of these mechanisms the machine has;
//! [`Isolation::ensure_minimum`] refuses to run jobs without the minimum (no network, read-only
//! inputs, a memory limit).
//!
//! A job may be given one way out, its [`Egress`]: connections to one port of its own loopback
//! reach one address outside, chosen by the keeper, and nothing else (see [`relay`]).
//!
//! The binary `insitu-sandbox-init` is the part that runs inside: it holds the start of a job
//! until its cgroup is set (`launch`), and confines the program before executing it (`confine`).

mod cgroup;
pub mod confine;
mod limits;
mod probe;
pub mod relay;
mod run;
pub mod supervise;

pub use cgroup::{CgroupVersion, Hierarchy};
pub use limits::{Limits, LimitsError};
pub use probe::{Isolation, probe};
pub use relay::{Egress, EgressUse};
pub use run::{
    Ending, Job, JobSpec, Mount, Outcome, Sandbox, SandboxConfig, SandboxError, Stopper,
};
