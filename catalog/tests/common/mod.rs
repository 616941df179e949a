//! A PostgreSQL server of this machine (Debian's `postgresql`, which `script/test.sh` installs
//! when missing), started in a folder of its own on a free port of 127.0.0.1 for one test binary,
//! and stopped when dropped.

#![allow(dead_code, unreachable_pub)]

use std::{path::PathBuf, process::Command};

/// A running server; stopped (and its folder removed) when dropped.
pub struct Postgres {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").exists())
        .expect("PostgreSQL is not installed: run script/postgres-deps.sh (script/test.sh does)")
}

impl Postgres {
    /// Starts a new cluster. As root, the server runs as the `postgres` account (PostgreSQL
    /// refuses root).
    pub fn start() -> Self {
        let bin = bin_dir();
        let data = tempfile::tempdir().expect("a folder");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0");
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(data.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster's folder failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let server = Self {
            bin,
            data,
            port,
            as_postgres,
        };
        let cluster = server.cluster();
        server.run(
            "initdb",
            &[
                "-D",
                cluster.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
        );
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            server.data.path().display()
        );
        server.run(
            "pg_ctl",
            &[
                "-D",
                cluster.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                server.data.path().join("server.log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        server
    }

    fn cluster(&self) -> PathBuf {
        self.data.path().join("cluster")
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let output = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .current_dir(self.data.path())
                .output()
        } else {
            Command::new(&path).args(args).output()
        }
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let log = std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default();
        assert!(
            output.status.success(),
            "{program} failed:\n{}\n{}\n{log}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (lower-cased, at most 60 bytes) and returns its URL.
    pub fn new_database(&self, name: &str) -> String {
        let name: String = name.to_lowercase().chars().take(60).collect();
        let port = self.port.to_string();
        self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name],
        );
        self.url(&name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let cluster = self.cluster();
        let args = [
            "-D",
            cluster.to_str().unwrap_or_default(),
            "-m",
            "immediate",
            "stop",
        ];
        let path = self.bin.join("pg_ctl");
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}
