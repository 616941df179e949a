//! The part of a job's sandbox that runs as the job: `launch` waits outside the namespaces
//! until the keeper has put it in the job's cgroup, sets the rlimits and executes bubblewrap;
//! `confine` runs inside, applies Landlock and seccomp, and executes the job's program;
//! `check` (used by the probe) applies the same and reports what holds, as JSON.

use std::{
    io::Read,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use clap::{Parser, Subcommand};
use insitu_sandbox::{
    confine::{self, Network},
    relay, supervise,
};
use rustix::process::{Resource, Rlimit, setrlimit};

/// Exit code when the sandbox itself failed (not the job).
const SANDBOX_FAILED: u8 = 125;

#[derive(Debug, Parser)]
#[command(about = "Starts a job inside the insitu sandbox (run by the keeper, not by hand).")]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Waits for one byte on standard input (sent once the process is in its cgroup), sets the
    /// rlimits, then executes PROGRAM.
    Launch {
        /// CPU seconds (RLIMIT_CPU).
        #[arg(long)]
        cpu_seconds: u64,
        /// Largest file the job may write, in bytes (RLIMIT_FSIZE).
        #[arg(long)]
        file_bytes: u64,
        /// Open files at once (RLIMIT_NOFILE).
        #[arg(long, default_value_t = 1024)]
        open_files: u64,
        /// The keeper's process id: the job is killed when that process dies.
        #[arg(long)]
        parent: Option<i32>,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        program: Vec<String>,
    },
    /// Applies Landlock and seccomp, then executes PROGRAM.
    Confine {
        /// Folders the job may read (repeatable).
        #[arg(long = "read")]
        read: Vec<PathBuf>,
        /// Folders the job may read and write (repeatable).
        #[arg(long = "write")]
        write: Vec<PathBuf>,
        /// Folders the job may write regular files and folders to, nothing else (repeatable).
        #[arg(long = "results")]
        results: Vec<PathBuf>,
        /// Allows IP sockets (a job with an egress, whose namespace holds only its loopback).
        #[arg(long)]
        loopback_tcp: bool,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        program: Vec<String>,
    },
    /// Applies Landlock and seccomp for itself, runs PROGRAM under `confine` (which cannot reach
    /// EXPORT or the report), then copies RESULTS to EXPORT and writes its report.
    Supervise {
        /// Folders the program may read (repeatable).
        #[arg(long = "read")]
        read: Vec<PathBuf>,
        /// Folders the program may read and write (repeatable).
        #[arg(long = "write")]
        write: Vec<PathBuf>,
        /// The program's results folder (a size-limited tmpfs).
        #[arg(long)]
        results: PathBuf,
        /// The host folder the results are copied to.
        #[arg(long)]
        export: PathBuf,
        /// Bytes the results may take.
        #[arg(long)]
        limit: u64,
        /// The job's egress: the port on the job's loopback joined to EGRESS_SOCKET.
        #[arg(long, requires = "egress_socket")]
        egress_port: Option<u16>,
        /// The Unix socket the host's half of the egress listens on.
        #[arg(long, requires = "egress_port")]
        egress_socket: Option<PathBuf>,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        program: Vec<String>,
    },
    /// Applies what `confine` applies, then prints as JSON what holds.
    Check {
        /// Folders readable (repeatable).
        #[arg(long = "read")]
        read: Vec<PathBuf>,
        /// Folders writable (repeatable).
        #[arg(long = "write")]
        write: Vec<PathBuf>,
    },
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("sandbox: {message}");
    ExitCode::from(SANDBOX_FAILED)
}

fn limit(resource: Resource, current: u64, maximum: u64) -> std::io::Result<()> {
    setrlimit(
        resource,
        Rlimit {
            current: Some(current),
            maximum: Some(maximum),
        },
    )
    .map_err(std::io::Error::from)
}

fn paths(list: &[PathBuf]) -> Vec<&Path> {
    list.iter().map(PathBuf::as_path).collect()
}

fn confine_self(
    read: &[PathBuf],
    write: &[PathBuf],
    results: &[PathBuf],
    network: Network,
) -> Result<confine::LandlockStatus, String> {
    let (read, write, results) = (paths(read), paths(write), paths(results));
    let landlock =
        confine::landlock(&read, &write, &results, network).map_err(|error| error.to_string())?;
    confine::seccomp(network).map_err(|error| error.to_string())?;
    Ok(landlock)
}

/// The job's network: its loopback when it has an egress, none otherwise.
fn network(loopback_tcp: bool) -> Network {
    if loopback_tcp {
        Network::Loopback
    } else {
        Network::None
    }
}

/// What `supervise` is to do.
struct Supervision<'a> {
    read: &'a [PathBuf],
    write: &'a [PathBuf],
    results: &'a Path,
    export: &'a Path,
    limit: u64,
    egress: Option<(u16, PathBuf)>,
    program: &'a [String],
}

fn execute(program: &[String]) -> ExitCode {
    let error = Command::new(&program[0]).args(&program[1..]).exec();
    fail(format!("cannot execute {}: {error}", program[0]))
}

fn supervise(job: Supervision<'_>) -> ExitCode {
    let Supervision {
        read,
        write,
        results,
        export,
        limit,
        egress,
        program,
    } = job;
    let report_folder = PathBuf::from(supervise::REPORT_FOLDER);
    let own_results = [
        results.to_path_buf(),
        export.to_path_buf(),
        report_folder.clone(),
    ];
    // The egress's listener is bound before the supervisor confines itself. Seccomp filters
    // and Landlock rules only ever narrow what the process before allowed, so the program's
    // network (its loopback, with an egress) must be the supervisor's too.
    let forwarder = match &egress {
        Some((port, socket)) => match std::net::TcpListener::bind(("127.0.0.1", *port)) {
            Ok(listener) => Some((listener, socket.clone())),
            Err(error) => return fail(format!("cannot listen on 127.0.0.1:{port}: {error}")),
        },
        None => None,
    };
    if let Err(error) = confine_self(read, write, &own_results, network(egress.is_some())) {
        return fail(error);
    }
    if let Some((listener, socket)) = forwarder
        && let Err(error) = relay::forward(listener, socket)
    {
        return fail(format!("cannot start the egress: {error}"));
    }
    // The program gets the same rules without the host folder and the report (Landlock
    // layers only narrow what the one before allowed).
    let mut confined = Command::new("/proc/self/exe");
    confined.arg("confine");
    for folder in read {
        confined.arg("--read").arg(folder);
    }
    for folder in write {
        confined.arg("--write").arg(folder);
    }
    confined.arg("--results").arg(results);
    if egress.is_some() {
        confined.arg("--loopback-tcp");
    }
    confined.arg("--").args(program);
    let status = match confined.status() {
        Ok(status) => status,
        Err(error) => return fail(format!("cannot start the program: {error}")),
    };
    let output_full = rustix::fs::statvfs(results).is_ok_and(|stats| stats.f_bavail == 0);
    let copied = supervise::copy_results(results, export, limit);
    let report = supervise::Report {
        exit_code: status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        output_full,
        exported_bytes: copied.as_ref().map_or(0, |(bytes, _)| *bytes),
        skipped: copied.as_ref().map_or(0, |(_, skipped)| *skipped),
        export_error: copied.err().map(|error| error.to_string()),
    };
    let written = serde_json::to_vec(&report)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(report_folder.join(supervise::REPORT_FILE), json));
    if let Err(error) = written {
        return fail(format!("cannot write the report: {error}"));
    }
    match (report.exit_code, report.signal) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
        (None, None) => ExitCode::from(1),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Mode::Launch {
            cpu_seconds,
            file_bytes,
            open_files,
            parent,
            program,
        } => {
            // The job dies with the keeper (the signal survives the executions that follow):
            // nothing runs on unwatched after a crash.
            if let Err(error) = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            )) {
                return fail(format!("cannot tie the job to the keeper: {error}"));
            }
            if parent.is_some()
                && rustix::process::getppid().map(rustix::process::Pid::as_raw_nonzero)
                    != parent.and_then(std::num::NonZeroI32::new)
            {
                return fail("the keeper is gone");
            }
            let mut go = [0_u8; 1];
            if std::io::stdin().read_exact(&mut go).is_err() || go[0] != b'1' {
                return fail("the keeper did not start the job");
            }
            // The CPU time's soft limit sends SIGXCPU (the job ended as timed out); the hard
            // one, five seconds later, SIGKILL to a job that ignores it.
            let limits = [
                (Resource::Cpu, cpu_seconds, cpu_seconds.saturating_add(5)),
                (Resource::Fsize, file_bytes, file_bytes),
                (Resource::Nofile, open_files, open_files),
                (Resource::Core, 0, 0),
            ];
            for (resource, value, maximum) in limits {
                if let Err(error) = limit(resource, value, maximum) {
                    return fail(format!("cannot set {resource:?} to {value}: {error}"));
                }
            }
            execute(&program)
        }
        Mode::Confine {
            read,
            write,
            results,
            loopback_tcp,
            program,
        } => match confine_self(&read, &write, &results, network(loopback_tcp)) {
            Ok(_) => execute(&program),
            Err(error) => fail(error),
        },
        Mode::Supervise {
            read,
            write,
            results,
            export,
            limit,
            egress_port,
            egress_socket,
            program,
        } => supervise(Supervision {
            read: &read,
            write: &write,
            results: &results,
            export: &export,
            limit,
            egress: egress_port.zip(egress_socket),
            program: &program,
        }),
        Mode::Check { read, write } => {
            let landlock = match confine_self(&read, &write, &[], Network::None) {
                Ok(status) => status,
                Err(error) => return fail(error),
            };
            // With seccomp loaded, an IP socket cannot even be made; with a network namespace,
            // only the loopback interface exists.
            let socket = rustix::net::socket(
                rustix::net::AddressFamily::INET,
                rustix::net::SocketType::DGRAM,
                None,
            )
            .is_ok();
            let interfaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
                .unwrap_or_default()
                .lines()
                .skip(2)
                .filter_map(|line| line.split(':').next().map(|name| name.trim().to_owned()))
                .collect();
            let report = serde_json::json!({
                "landlock": landlock,
                "ipSocket": socket,
                "interfaces": interfaces,
                "uid": rustix::process::getuid().as_raw(),
            });
            println!("{report}");
            ExitCode::SUCCESS
        }
    }
}
