//! Reports: readable steps, the failure file, the one-line JSON summary.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::actions::{Labels, Step};
use super::invariants::{INVARIANTS, Violation};
use super::{Campaign, Config, Report};

/// Format tag of failure files.
pub const FORMAT: &str = "insitu-fuzz-failure/1";

/// A failure saved to disk, replayable with `fuzz --replay FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Seed of the campaign that found it.
    pub seed: u64,
    /// The broken invariant and what was seen.
    pub violation: Violation,
    /// Name of the contract variant the suite was deployed with (`None`: the real contracts).
    pub variant: Option<String>,
    /// The steps, shrunk.
    pub steps: Vec<Step>,
}

impl FailureFile {
    /// Reads a failure file.
    ///
    /// # Errors
    ///
    /// If the file cannot be read or is not a failure file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let file: Self = serde_json::from_str(&text)?;
        anyhow::ensure!(
            file.format == FORMAT,
            "{} is a {:?} file, expected {FORMAT:?}",
            path.display(),
            file.format
        );
        Ok(file)
    }

    /// Writes the file into `dir` as `<seed>-<invariant>.json` and returns its path.
    ///
    /// # Errors
    ///
    /// If the folder or the file cannot be written.
    pub fn save(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let variant = self
            .variant
            .as_deref()
            .map(|v| format!("{v}-"))
            .unwrap_or_default();
        let path = dir.join(format!(
            "{variant}{}-{}.json",
            self.seed, self.violation.invariant
        ));
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(path)
    }
}

/// Numbered, readable steps with their outcomes.
pub fn steps(campaign: &mut Campaign, steps: &[Step]) -> String {
    let labels: Labels = campaign.labels(steps);
    let outcomes = campaign.outcomes(steps);
    let width = steps.len().to_string().len();
    let mut out = String::new();
    for (i, (step, outcome)) in steps.iter().zip(outcomes).enumerate() {
        let result = if step.call.is_clock() {
            String::new()
        } else {
            match outcome {
                None => "  -> ok".to_owned(),
                Some(error) => format!("  -> reverts: {error}"),
            }
        };
        out.push_str(&format!(
            "{:>width$}. {}{result}\n",
            i + 1,
            labels.describe(step)
        ));
    }
    out
}

/// The one-line JSON summary printed last by `fuzz --json`.
pub fn summary(report: &Report, config: &Config, failure_file: Option<&Path>) -> serde_json::Value {
    let invariants: Vec<&str> = INVARIANTS.iter().map(|(name, _)| *name).collect();
    serde_json::json!({
        "seed": report.seed,
        "runs": config.runs,
        "depth": config.depth,
        "calls": report.calls,
        "sequences": report.sequences,
        "calls_per_second": (report.calls_per_second() * 10.0).round() / 10.0,
        "invariants": invariants,
        "violations": u64::from(report.failure.is_some()),
        "clock_moves": report.clock_moves,
        "elapsed_seconds": (report.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "sequence_hash": format!("{:016x}", report.sequence_hash),
        "violation": report.failure.as_ref().map(|f| serde_json::json!({
            "invariant": f.violation.invariant,
            "message": f.violation.message,
            "steps": f.steps.len(),
            "found_after_calls": f.calls_until_found,
            "file": failure_file.map(|p| p.display().to_string()),
        })),
    })
}
