//! Proof that the fuzzer bites: each planted bug (a copy of a production contract with one
//! deliberate defect, `test/fixtures/planted/`) is found within a bounded number of calls, reported
//! under the invariant it breaks, shrunk to a short sequence, saved, and reproduced by replaying
//! the saved file.

use alloy::primitives::Bytes;
use insitu_bindings::fixtures;
use insitu_tests::fuzz::planted::{PLANTED, Planted};
use insitu_tests::fuzz::report::{self, FORMAT, FailureFile};
use insitu_tests::fuzz::{Campaign, Config};

/// Creation code of a planted copy.
fn code(name: &str) -> Bytes {
    match name {
        "PaymentReleaseTwice" => fixtures::PaymentReleaseTwice::BYTECODE.clone(),
        "PaymentRefundWithoutAbort" => fixtures::PaymentRefundWithoutAbort::BYTECODE.clone(),
        "PaymentWithdrawTwice" => fixtures::PaymentWithdrawTwice::BYTECODE.clone(),
        "PaymentAcceptsLess" => fixtures::PaymentAcceptsLess::BYTECODE.clone(),
        "PaymentFeeRoundsUp" => fixtures::PaymentFeeRoundsUp::BYTECODE.clone(),
        "AccessWithoutLock" => fixtures::AccessWithoutLock::BYTECODE.clone(),
        "StoreLateFulfil" => fixtures::StoreLateFulfil::BYTECODE.clone(),
        other => panic!("no planted contract {other}"),
    }
}

fn planted(name: &str) -> &'static Planted {
    PLANTED
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} is not in PLANTED"))
}

/// Runs a campaign with `seed` against the suite with `name` planted; checks the bug is found
/// within `max_calls`, under its invariant, shrunk to at most `max_steps`, and that the saved
/// failure file replays to the same violation.
fn bites(name: &str, seed: u64, max_calls: u64, max_steps: usize) {
    let bug = planted(name);
    let mut campaign = Campaign::new(bug.overrides(code(name))).expect("environment");
    let config = Config {
        seed,
        runs: 50,
        depth: 100,
        time_limit: None,
        progress: None,
        shrink: true,
    };
    let report = campaign.run(&config);
    let failure = report
        .failure
        .unwrap_or_else(|| panic!("{name}: no violation in {} calls", report.calls));
    assert_eq!(
        failure.violation.invariant, bug.invariant,
        "{name}: reported {:?}",
        failure.violation
    );
    assert!(
        failure.calls_until_found <= max_calls,
        "{name}: found only after {} calls",
        failure.calls_until_found
    );
    assert!(
        failure.steps.len() <= max_steps,
        "{name}: shrunk to {} steps only",
        failure.steps.len()
    );
    assert!(failure.steps.len() <= failure.original_len);

    // Readable steps: one numbered line per step.
    let printed = report::steps(&mut campaign, &failure.steps);
    assert_eq!(printed.lines().count(), failure.steps.len(), "{printed}");
    assert!(printed.starts_with("1. "), "{printed}");

    // Saved, loaded, replayed on a fresh environment: the same invariant breaks.
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = FailureFile {
        format: FORMAT.to_owned(),
        seed,
        violation: failure.violation.clone(),
        variant: Some(name.to_owned()),
        steps: failure.steps.clone(),
    };
    let path = file.save(dir.path()).expect("save");
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some(format!("{name}-{seed}-{}.json", bug.invariant).as_str())
    );
    let loaded = FailureFile::load(&path).expect("load");
    assert_eq!(loaded, file);
    let mut fresh = Campaign::new(bug.overrides(code(name))).expect("environment");
    let replayed = fresh.replay(&loaded.steps);
    let (index, violation) = replayed
        .violation
        .unwrap_or_else(|| panic!("{name}: the replay broke nothing"));
    assert_eq!(violation.invariant, bug.invariant);
    assert_eq!(index + 1, loaded.steps.len(), "the last step breaks it");

    // And the real contracts pass the very same steps.
    let mut real = Campaign::new(Default::default()).expect("environment");
    let clean = real.replay(&loaded.steps);
    assert!(
        clean.violation.is_none(),
        "{name}: the real contracts fail the sequence too: {:?}",
        clean.violation
    );
}

#[test]
fn every_planted_bug_has_a_test_and_creation_code() {
    let tested = [
        "PaymentReleaseTwice",
        "PaymentRefundWithoutAbort",
        "PaymentWithdrawTwice",
        "PaymentAcceptsLess",
        "PaymentFeeRoundsUp",
        "AccessWithoutLock",
        "StoreLateFulfil",
    ];
    let listed: Vec<&str> = PLANTED.iter().map(|p| p.name).collect();
    assert_eq!(listed, tested);
    for bug in PLANTED {
        assert!(!code(bug.name).is_empty());
        assert!(
            insitu_tests::fuzz::invariants::names().contains(&bug.invariant),
            "{} expects an unknown invariant",
            bug.name
        );
    }
}

#[test]
fn a_payment_released_twice_is_caught() {
    bites("PaymentReleaseTwice", 3, 100, 4);
}

#[test]
fn a_refund_without_an_aborted_service_is_caught() {
    bites("PaymentRefundWithoutAbort", 10, 300, 3);
}

#[test]
fn a_credit_withdrawn_twice_is_caught() {
    bites("PaymentWithdrawTwice", 3, 500, 5);
}

#[test]
fn a_payment_that_accepts_less_than_the_total_is_caught() {
    bites("PaymentAcceptsLess", 2, 200, 2);
}

#[test]
fn a_fee_rounded_up_is_caught() {
    bites("PaymentFeeRoundsUp", 11, 50, 2);
}

#[test]
fn access_without_a_payment_is_caught() {
    bites("AccessWithoutLock", 15, 100, 3);
}

#[test]
fn a_fulfilment_at_the_time_out_second_is_caught() {
    bites("StoreLateFulfil", 13, 200, 4);
}
