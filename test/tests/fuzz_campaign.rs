//! The fuzzer on the real contracts: a short fixed-seed campaign finds no violation (this is the
//! fuzzing run of the test command), runs are reproducible from their seed, and the `fuzz` binary
//! prints the documented JSON summary, refuses empty campaigns and reports progress.

use std::process::Command;

use alloy::primitives::{Address, B256, U256, keccak256};
use insitu_tests::fuzz::actions::{Call, OfferArgs, OfferSig, Service, Step};
use insitu_tests::fuzz::env::Actor;
use insitu_tests::fuzz::invariants::INVARIANTS;
use insitu_tests::fuzz::{Campaign, Config, hash_steps};

/// The fixed-seed campaign of the test command: seconds in a debug build.
fn short() -> Config {
    Config {
        seed: 20_241_124,
        runs: 6,
        depth: 80,
        time_limit: None,
        progress: None,
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
    for function in [
        "createAgreementAndPay",
        "createAgreement",
        "fulfil",
        "release",
        "rogue.createFor",
    ] {
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
    let env = &campaign.env;
    // consumer0 buys asset0 from keeper0's signed offer, paying 1,000 wei plus the 1% fee.
    let offer = OfferArgs {
        did: env.dids[0],
        checksum: keccak256(b"metadata"),
        provider: env.keepers[0],
        token: Address::ZERO,
        receivers: vec![env.providers[0]],
        amounts: vec![U256::from(1_000)],
        min_timeout: 3_600,
        max_timeout: 3 * 86_400,
        expiry: env.chain.timestamp() + 86_400,
        epoch: 0,
    };
    let steps = vec![
        Step {
            actor: Actor::Consumer(0),
            call: Call::Pay {
                template: env.suite.access_template,
                seed: B256::with_last_byte(1),
                offer,
                sig: OfferSig {
                    signer: Some(Actor::Keeper(0)),
                    domain: Service::Access,
                    signed: None,
                },
                timeout: 0,
                max_total: U256::from(1_010),
                value: U256::from(1_010),
            },
        },
        Step {
            actor: Actor::Governor,
            call: Call::Warp { seconds: 259_200 },
        },
    ];
    let json = serde_json::to_string(&steps).expect("serialise");
    let again: Vec<Step> = serde_json::from_str(&json).expect("parse");
    assert_eq!(steps, again);
    assert_eq!(hash_steps(&steps), hash_steps(&again));
    let execution = campaign.replay(&steps);
    assert!(execution.violation.is_none(), "{:?}", execution.violation);
    assert_eq!(execution.calls, 1);
    assert_eq!(
        campaign.outcomes(&steps),
        vec![None, None],
        "the purchase succeeds"
    );
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
        "runs",
        "depth",
    ] {
        assert!(summary.get(key).is_some(), "{key} missing from {last}");
    }
    assert_eq!(summary["seed"], 5);
    assert_eq!(summary["runs"], 2);
    assert_eq!(summary["depth"], 15);
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

#[test]
fn the_binary_refuses_an_empty_campaign() {
    for (flag, message) in [
        ("--runs", "--runs must be at least 1"),
        ("--depth", "--depth must be at least 1"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_fuzz"))
            .args(["--seed", "5", flag, "0", "--json"])
            .output()
            .expect("run fuzz");
        assert_eq!(output.status.code(), Some(2), "{flag} 0: {output:?}");
        let stderr = String::from_utf8(output.stderr).expect("utf-8");
        assert!(stderr.contains(message), "{flag} 0: {stderr}");
        assert!(output.stdout.is_empty(), "{flag} 0 printed a summary");
    }
}

#[test]
fn the_binary_reports_progress_on_stderr() {
    let output = Command::new(env!("CARGO_BIN_EXE_fuzz"))
        .args([
            "--seed",
            "5",
            "--runs",
            "3",
            "--depth",
            "10",
            "--progress",
            "0.000001",
            "--json",
        ])
        .output()
        .expect("run fuzz");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("fuzz: "))
        .collect();
    assert!(!lines.is_empty(), "no progress line: {stderr}");
    for line in &lines {
        for part in ["runs done", "calls", "calls/s", "violations"] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
    }
    // And nothing of it on stdout, whose last line stays the JSON summary.
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let last = stdout.lines().last().expect("a line");
    assert!(
        serde_json::from_str::<serde_json::Value>(last).is_ok(),
        "{last}"
    );

    let quiet = Command::new(env!("CARGO_BIN_EXE_fuzz"))
        .args([
            "--seed",
            "5",
            "--runs",
            "2",
            "--depth",
            "10",
            "--progress",
            "0",
            "--json",
        ])
        .output()
        .expect("run fuzz");
    assert!(quiet.status.success(), "{quiet:?}");
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("runs done"));
}
