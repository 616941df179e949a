//! Stateful invariant fuzzing of the contract suite, for auditors (see `docs/fuzzing.md`).
//!
//! ```text
//! cargo run --release --bin fuzz -- --seed 1 --runs 200 --depth 100
//! cargo run --release --bin fuzz -- --replay fuzz-failures/1-escrow_solvency.json
//! ```
//!
//! Exit status: 0 when no invariant broke, 1 when one did (the shrunk sequence is printed and
//! saved), 2 on a usage or setup error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use insitu_tests::fuzz::env::Overrides;
use insitu_tests::fuzz::invariants::INVARIANTS;
use insitu_tests::fuzz::report::{self, FORMAT, FailureFile};
use insitu_tests::fuzz::{Campaign, Config};

/// Fuzzes the insitu contracts with random call sequences and checks every invariant after
/// every call.
#[derive(Debug, Parser)]
#[command(name = "fuzz", version)]
struct Args {
    /// Seed of the campaign; the same seed and settings give the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of call sequences.
    #[arg(long, default_value_t = 100)]
    runs: u64,
    /// Calls per sequence.
    #[arg(long, default_value_t = 100)]
    depth: usize,
    /// Stop starting new sequences after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,
    /// Print one JSON object as the last line (seed, runs, depth, calls, sequences,
    /// calls_per_second, invariants, violations, ...).
    #[arg(long)]
    json: bool,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    progress: f64,
    /// Run the steps of a saved failure file instead of a campaign.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Where failure files are written.
    #[arg(long, value_name = "DIR", default_value = "fuzz-failures")]
    out: PathBuf,
    /// Report a failing sequence as found, without shrinking it.
    #[arg(long)]
    no_shrink: bool,
    /// Also print how many calls of each function succeeded and reverted.
    #[arg(long)]
    stats: bool,
    /// List the invariants and exit.
    #[arg(long)]
    list_invariants: bool,
    /// Deploy the suite with a deliberately broken contract (needs `--features planted`).
    #[arg(long, value_name = "NAME")]
    plant: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("fuzz: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs what `args` ask; `Ok(false)` when an invariant broke.
fn run(args: &Args) -> Result<bool> {
    if args.list_invariants {
        for (name, meaning) in INVARIANTS {
            println!("{name:<26} {meaning}");
        }
        return Ok(true);
    }
    if let Some(path) = &args.replay {
        return replay(path, args.json);
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1 (a campaign of no sequence checks nothing)");
    }
    if args.depth == 0 {
        bail!("--depth must be at least 1 (a sequence of no call checks nothing)");
    }
    let overrides = overrides(args.plant.as_deref())?;
    let variant = overrides.name.clone();
    let mut campaign = Campaign::new(overrides).context("setting up the fuzzing environment")?;
    let config = Config {
        seed: args.seed,
        runs: args.runs,
        depth: args.depth,
        time_limit: args.time_limit.map(Duration::from_secs_f64),
        progress: (args.progress > 0.0).then(|| Duration::from_secs_f64(args.progress)),
        shrink: !args.no_shrink,
    };
    if !args.json {
        println!(
            "fuzz: seed {}, {} sequences of {} calls{}, {} invariants",
            config.seed,
            config.runs,
            config.depth,
            variant
                .as_deref()
                .map(|v| format!(", planted bug {v}"))
                .unwrap_or_default(),
            INVARIANTS.len()
        );
    }
    let report = campaign.run(&config);
    let mut file_path = None;
    if let Some(failure) = &report.failure {
        let labels = campaign.labels(&failure.steps);
        println!(
            "\nVIOLATION of {}: {}",
            failure.violation.invariant,
            labels.annotate(&failure.violation.message)
        );
        println!(
            "found in sequence {} after {} calls; shrunk from {} to {} steps:\n",
            failure.sequence + 1,
            failure.calls_until_found,
            failure.original_len,
            failure.steps.len()
        );
        print!("{}", report::steps(&mut campaign, &failure.steps));
        let file = FailureFile {
            format: FORMAT.to_owned(),
            seed: report.seed,
            violation: failure.violation.clone(),
            variant,
            steps: failure.steps.clone(),
        };
        let path = file.save(&args.out)?;
        println!("\nsaved to {}", path.display());
        println!(
            "replay with: cargo run --release --bin fuzz{} -- --replay {}",
            if file.variant.is_some() {
                " --features planted"
            } else {
                ""
            },
            path.display()
        );
        file_path = Some(path);
    }
    if args.json {
        println!(
            "{}",
            report::summary(&report, &config, file_path.as_deref())
        );
    } else {
        if args.stats {
            println!("\n{:<24} {:>9} {:>9}", "function", "ok", "reverted");
            for (name, tally) in &report.tally {
                let mut errors: Vec<(&String, &u64)> = tally.errors.iter().collect();
                errors.sort_by(|a, b| b.1.cmp(a.1));
                let top: Vec<String> = errors
                    .iter()
                    .take(3)
                    .map(|(e, n)| format!("{e} {n}"))
                    .collect();
                println!(
                    "{name:<24} {:>9} {:>9}   {}",
                    tally.ok,
                    tally.reverted,
                    top.join(", ")
                );
            }
        }
        println!(
            "\n{} calls ({} clock moves) in {} sequences, {:.1} s, {:.0} calls/s; {}",
            report.calls,
            report.clock_moves,
            report.sequences,
            report.elapsed.as_secs_f64(),
            report.calls_per_second(),
            if report.failure.is_some() {
                "1 violation"
            } else {
                "no violation"
            }
        );
    }
    Ok(report.failure.is_none())
}

fn replay(path: &Path, json: bool) -> Result<bool> {
    let file = FailureFile::load(path).with_context(|| format!("reading {}", path.display()))?;
    let overrides = overrides(file.variant.as_deref())?;
    let mut campaign = Campaign::new(overrides).context("setting up the fuzzing environment")?;
    println!(
        "replaying {} ({} steps, recorded violation of {}):\n",
        path.display(),
        file.steps.len(),
        file.violation.invariant
    );
    print!("{}", report::steps(&mut campaign, &file.steps));
    let execution = campaign.replay(&file.steps);
    let reproduced = match &execution.violation {
        Some((index, violation)) => {
            let labels = campaign.labels(&file.steps);
            println!(
                "\nVIOLATION of {} after step {}: {}",
                violation.invariant,
                index + 1,
                labels.annotate(&violation.message)
            );
            true
        }
        None => {
            println!("\nno violation: the sequence no longer breaks any invariant");
            false
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "replay": path.display().to_string(),
                "calls": execution.calls,
                "violations": u64::from(reproduced),
                "invariant": execution.violation.as_ref().map(|(_, v)| v.invariant.clone()),
            })
        );
    }
    Ok(!reproduced)
}

/// The contract overrides of a planted-bug variant.
fn overrides(plant: Option<&str>) -> Result<Overrides> {
    let Some(name) = plant else {
        return Ok(Overrides::default());
    };
    planted(name)
}

#[cfg(feature = "planted")]
fn planted(name: &str) -> Result<Overrides> {
    use insitu_bindings::fixtures;
    use insitu_tests::fuzz::planted::PLANTED;
    let Some(bug) = PLANTED.iter().find(|p| p.name == name) else {
        let names: Vec<&str> = PLANTED.iter().map(|p| p.name).collect();
        bail!("no planted bug named {name:?}; known: {}", names.join(", "))
    };
    let code = match bug.name {
        "PaymentReleaseTwice" => fixtures::PaymentReleaseTwice::BYTECODE.clone(),
        "PaymentRefundWithoutAbort" => fixtures::PaymentRefundWithoutAbort::BYTECODE.clone(),
        "PaymentWithdrawTwice" => fixtures::PaymentWithdrawTwice::BYTECODE.clone(),
        "PaymentAcceptsLess" => fixtures::PaymentAcceptsLess::BYTECODE.clone(),
        "PaymentFeeRoundsUp" => fixtures::PaymentFeeRoundsUp::BYTECODE.clone(),
        "AccessWithoutLock" => fixtures::AccessWithoutLock::BYTECODE.clone(),
        "StoreLateFulfil" => fixtures::StoreLateFulfil::BYTECODE.clone(),
        other => bail!("the planted bug {other:?} has no creation code in this build"),
    };
    Ok(bug.overrides(code))
}

#[cfg(not(feature = "planted"))]
fn planted(name: &str) -> Result<Overrides> {
    bail!(
        "the planted bug {name:?} needs the planted contracts: \
         cargo run --release --features planted --bin fuzz -- ..."
    )
}
