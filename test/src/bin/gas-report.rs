//! Prints the gas benchmark of the contract suite (see `insitu_tests::gas` for the scenario).
//!
//! - no flag: a table;
//! - `--json`: one JSON object with integer fields, as the last line;
//! - `--profile`: also where the gas of each step of the keeper path goes;
//! - `--write-snapshot FILE`: writes the figures to FILE (the committed `gas-snapshot.json`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use insitu_tests::gas::{self, Measurement};

/// Prints the gas used by each step of the access and compute lifecycles.
#[derive(Debug, Parser)]
#[command(name = "gas-report")]
struct Args {
    /// Print one JSON object as the last line instead of a table.
    #[arg(long)]
    json: bool,
    /// Also print where the gas of each step of the keeper path goes.
    #[arg(long)]
    profile: bool,
    /// Write the figures as pretty JSON to this file (the gas snapshot).
    #[arg(long, value_name = "FILE")]
    write_snapshot: Option<PathBuf>,
}

fn print_profiles(measurement: &Measurement) {
    for (function, profile) in &measurement.profiles {
        println!("{function}: {} gas before refund", profile.total());
        for (part, gas) in profile.parts() {
            if gas != 0 {
                println!("    {part:<28} {gas:>8}");
            }
        }
        for (address, gas) in &profile.by_contract {
            let name = measurement
                .labels
                .get(address)
                .map_or("other contract", String::as_str);
            println!("    executed in {name:<16} {gas:>8}");
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let measurement = gas::measure(args.profile).context("running the gas benchmark")?;
    if args.profile {
        print_profiles(&measurement);
    }
    if let Some(path) = &args.write_snapshot {
        let json = serde_json::to_string_pretty(&measurement.report)? + "\n";
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&measurement.report)?);
        return Ok(());
    }
    let value = serde_json::to_value(&measurement.report)?;
    let fields = value.as_object().context("the report is a JSON object")?;
    println!("{:<36} {:>10}", "step (steady state, ERC20, 1% fee)", "gas");
    for (name, gas) in fields {
        println!("{name:<36} {gas:>10}");
    }
    Ok(())
}
