//! What one job may use.

use serde::{Deserialize, Serialize};

/// The resources a job may use. Every limit is enforced by the sandbox; none is advisory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock seconds from start to kill.
    pub wall_secs: u64,
    /// Memory (resident, page cache, `/tmp` and `/output` included; no swap), in MiB: at least
    /// `outputMb + tmpMb + 16`.
    pub memory_mb: u64,
    /// CPU, in percent of one core (100 = one core, 250 = two and a half).
    pub cpu_percent: u32,
    /// Processes and threads at once.
    pub pids: u32,
    /// Bytes of the output folder (a tmpfs of that size), in MiB (also the largest file the job
    /// may write).
    pub output_mb: u64,
    /// Size of the job's `/tmp` (a tmpfs, counted in its memory too), in MiB.
    pub tmp_mb: u64,
    /// Bytes of logs kept, in KiB; the rest is dropped and the log says so.
    pub log_kb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall_secs: 600,
            memory_mb: 512,
            cpu_percent: 100,
            pids: 64,
            output_mb: 100,
            tmp_mb: 64,
            log_kb: 1024,
        }
    }
}

/// A limit out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit {name} must be between {min} and {max}, not {value}")]
pub struct LimitsError {
    /// The limit's name, as in its JSON form.
    pub name: &'static str,
    /// The value given.
    pub value: u64,
    /// Smallest value accepted.
    pub min: u64,
    /// Largest value accepted.
    pub max: u64,
}

impl Limits {
    /// Checks every limit against its range (a job with a limit of zero could not even start,
    /// and one beyond the ranges is a typo more often than a wish).
    ///
    /// # Errors
    ///
    /// The first [`LimitsError`].
    pub fn validate(&self) -> Result<(), LimitsError> {
        let checks: [(&'static str, u64, u64, u64); 7] = [
            ("wallSecs", self.wall_secs, 1, 7 * 24 * 3600),
            ("memoryMb", self.memory_mb, 16, 1 << 20),
            ("cpuPercent", u64::from(self.cpu_percent), 1, 100 * 1024),
            ("pids", u64::from(self.pids), 1, 1 << 16),
            ("outputMb", self.output_mb, 1, 1 << 24),
            ("tmpMb", self.tmp_mb, 1, 1 << 20),
            ("logKb", self.log_kb, 1, 1 << 20),
        ];
        for (name, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(LimitsError {
                    name,
                    value,
                    min,
                    max,
                });
            }
        }
        // `/output` and `/tmp` are memory (tmpfs), charged to the job: they must leave room.
        let room = self
            .output_mb
            .saturating_add(self.tmp_mb)
            .saturating_add(16);
        if self.memory_mb < room {
            return Err(LimitsError {
                name: "memoryMb",
                value: self.memory_mb,
                min: room,
                max: 1 << 20,
            });
        }
        Ok(())
    }

    /// Memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mb.saturating_mul(1 << 20)
    }

    /// Output in bytes.
    pub fn output_bytes(&self) -> u64 {
        self.output_mb.saturating_mul(1 << 20)
    }

    /// `/tmp` in bytes.
    pub fn tmp_bytes(&self) -> u64 {
        self.tmp_mb.saturating_mul(1 << 20)
    }

    /// Logs kept, in bytes.
    pub fn log_bytes(&self) -> u64 {
        self.log_kb.saturating_mul(1 << 10)
    }

    /// CPU seconds the job may burn in all (its rlimit): the wall time at the CPU quota, plus
    /// one second so that the wall clock, not the rlimit, ends a job that is merely slow.
    pub fn cpu_seconds(&self) -> u64 {
        let cores = u64::from(self.cpu_percent).div_ceil(100).max(1);
        self.wall_secs.saturating_mul(cores).saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bound_is_checked() {
        Limits::default().validate().unwrap();
        let zero_memory = Limits {
            memory_mb: 0,
            ..Limits::default()
        };
        let error = zero_memory.validate().unwrap_err();
        assert_eq!(error.name, "memoryMb");
        assert_eq!(error.value, 0);
        let huge_pids = Limits {
            pids: 1 << 20,
            ..Limits::default()
        };
        assert_eq!(huge_pids.validate().unwrap_err().name, "pids");
        let no_time = Limits {
            wall_secs: 0,
            ..Limits::default()
        };
        assert_eq!(no_time.validate().unwrap_err().name, "wallSecs");
        // Output and /tmp live in memory.
        let cramped = Limits {
            memory_mb: 100,
            output_mb: 80,
            tmp_mb: 64,
            ..Limits::default()
        };
        let error = cramped.validate().unwrap_err();
        assert_eq!((error.name, error.min), ("memoryMb", 160));
    }

    #[test]
    fn json_form_is_camel_case_and_strict() {
        let json = serde_json::to_value(Limits::default()).unwrap();
        assert_eq!(json["wallSecs"], 600);
        assert_eq!(json["memoryMb"], 512);
        let mut with_unknown = json.clone();
        with_unknown["network"] = true.into();
        assert!(serde_json::from_value::<Limits>(with_unknown).is_err());
        assert_eq!(
            serde_json::from_value::<Limits>(json).unwrap(),
            Limits::default()
        );
    }

    #[test]
    fn cpu_seconds_cover_the_wall_time_at_the_quota() {
        let limits = Limits {
            wall_secs: 10,
            cpu_percent: 250,
            ..Limits::default()
        };
        assert_eq!(limits.cpu_seconds(), 31);
        assert_eq!(Limits::default().cpu_seconds(), 601);
    }
}
