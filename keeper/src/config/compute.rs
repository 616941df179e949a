//! The `[compute]` table: whether and how the keeper runs compute jobs in its local sandbox.

use std::path::{Path, PathBuf};

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
/// the sandbox is probed, and the keeper refuses to start when it cannot isolate jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
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
            }],
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
        }
        Ok(())
    }

    /// The runtime named `name`, if this keeper offers it.
    pub fn runtime(&self, name: &str) -> Option<&RuntimeConfig> {
        self.runtimes.iter().find(|runtime| runtime.name == name)
    }

    /// Resolves the relative paths against `base`.
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        for path in [Some(&mut self.work_root), self.sandbox_init.as_mut()]
            .into_iter()
            .flatten()
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
        let cases: [(Change, &str); 8] = [
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
