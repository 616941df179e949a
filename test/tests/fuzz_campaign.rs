//! The fuzzer on the real contracts: a short fixed-seed campaign finds no violation (this is the
//! fuzzing run of the test command), runs are reproducible from their seed, and the `fuzz` binary
//! prints the documented JSON summary.

use std::process::Command;

use insitu_tests::fuzz::invariants::INVARIANTS;
use insitu_tests::fuzz::{Campaign, Config, hash_steps};

/// The fixed-seed campaign of the test command: seconds in a debug build.
fn short() -> Config {
    Config {
        seed: 20_241_124,
        runs: 6,
        depth: 80,
        time_limit: None,
        shrink: true,
    }
}

#[test]
fn a_short_campaign_over_the_real_contracts_finds_no_violation() {
    let mut campaign = Campaign::new(Default::default()).expect("environment");
    let report = campaign.run(&short());
    if let Some(failure) = &report.failure {
        let steps = insitu_tests::fuzz::report::steps(&mut campaign, &failure.steps);
        panic!(
            "violation of {}: {}\n{steps}",
            failure.violation.invariant, failure.violation.message
        );
    }
    assert_eq!(report.sequences, 6);
    assert_eq!(report.calls + report.clock_moves, 6 * 80);
    // The campaign exercised the protocol, not just reverts.
    for function in ["createAgreementAndLock", "fulfil", "release"] {
        let tally = report.tally.get(function).cloned().unwrap_or_default();
        assert!(tally.ok > 0, "no successful {function}: {tally:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let config = Config {
        seed: 7,
        runs: 3,
        depth: 40,
        ..short()
    };
    let mut campaign = Campaign::new(Default::default()).expect("environment");
    let first = campaign.run(&config);
    let mut other = Campaign::new(Default::default()).expect("environment");
    let second = other.run(&config);
    assert_eq!(first.calls, second.calls);
    assert_eq!(first.clock_moves, second.clock_moves);
    assert_eq!(first.sequence_hash, second.sequence_hash);
    assert_eq!(first.tally, second.tally);

    let third = campaign.run(&Config { seed: 8, ..config });
    assert_ne!(first.sequence_hash, third.sequence_hash);
}

#[test]
fn a_sequence_replays_to_the_same_steps_and_hash() {
    let mut campaign = Campaign::new(Default::default()).expect("environment");
    let steps: Vec<insitu_tests::fuzz::actions::Step> = serde_json::from_str(
        r#"[
            {"actor": {"consumer": 0}, "call": {"fn": "create_agreement", "service": "access",
             "seed": "0x0000000000000000000000000000000000000000000000000000000000000001",
             "did": "0x0000000000000000000000000000000000000000000000000000000000000002",
             "terms": {"token": "0x0000000000000000000000000000000000000000",
                       "receivers": ["0x00000000000000000000000000000000000000aa"],
                       "amounts": ["0x3e8"], "service_timeout": 0},
             "and_lock": true, "value": "0x3f2"}},
            {"actor": "governor", "call": {"fn": "warp", "seconds": 259200}}
        ]"#,
    )
    .expect("steps");
    let json = serde_json::to_string(&steps).expect("serialise");
    let again: Vec<insitu_tests::fuzz::actions::Step> = serde_json::from_str(&json).expect("parse");
    assert_eq!(steps, again);
    assert_eq!(hash_steps(&steps), hash_steps(&again));
    let execution = campaign.replay(&steps);
    assert!(execution.violation.is_none(), "{:?}", execution.violation);
    assert_eq!(execution.calls, 1);
}

#[test]
fn the_binary_prints_the_json_summary_last() {
    let output = Command::new(env!("CARGO_BIN_EXE_fuzz"))
        .args(["--seed", "5", "--runs", "2", "--depth", "15", "--json"])
        .output()
        .expect("run fuzz");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let last = stdout.lines().last().expect("a line");
    let summary: serde_json::Value = serde_json::from_str(last).expect("JSON");
    for key in [
        "calls",
        "sequences",
        "calls_per_second",
        "invariants",
        "violations",
        "seed",
    ] {
        assert!(summary.get(key).is_some(), "{key} missing from {last}");
    }
    assert_eq!(summary["seed"], 5);
    assert_eq!(summary["sequences"], 2);
    assert_eq!(summary["violations"], 0);
    let names: Vec<&str> = summary["invariants"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let expected: Vec<&str> = INVARIANTS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected);
}
