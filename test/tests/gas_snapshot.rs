//! The committed gas snapshot matches the contracts, and the lifecycle stays within budget.

use std::path::PathBuf;

use insitu_tests::gas::{self, GasReport};

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("gas-snapshot.json")
}

#[test]
fn the_committed_snapshot_matches_the_contracts() {
    let measured = gas::measure(false).expect("gas benchmark").report;
    let path = snapshot_path();
    let text = std::fs::read_to_string(&path).expect("gas-snapshot.json at the repository root");
    let committed: GasReport = serde_json::from_str(&text).expect("a valid snapshot");
    if committed != measured {
        let committed = serde_json::to_value(&committed).expect("json");
        let measured = serde_json::to_value(&measured).expect("json");
        let mut diff = String::new();
        for (field, now) in measured.as_object().expect("object") {
            let before = &committed[field];
            if before != now {
                diff.push_str(&format!("\n  {field}: {before} -> {now}"));
            }
        }
        panic!(
            "gas changed:{diff}\nregenerate the snapshot with \
             `cargo run -p insitu-tests --bin gas-report -- --write-snapshot gas-snapshot.json` \
             and commit it"
        );
    }
}

/// The keeper path's budget: 30% of Nevermined v3.2.1's ~771,300 gas for the same work (one-tx
/// purchase with a 1% fee and two payees, then access and escrow release).
const KEEPER_PATH_BUDGET: u64 = 231_000;

#[test]
fn the_keeper_path_and_the_lifecycle_stay_within_budget() {
    let report = gas::measure(false).expect("gas benchmark").report;
    assert!(
        report.access_lifecycle_keeper_total <= KEEPER_PATH_BUDGET,
        "keeper path uses {} gas, budget {KEEPER_PATH_BUDGET}",
        report.access_lifecycle_keeper_total
    );
    assert_eq!(
        report.access_lifecycle_keeper_total,
        report.create_agreement_and_pay + report.fulfil_access_and_release
    );
    // The three-transaction lifecycle keeps its first bar.
    assert!(
        report.access_lifecycle_total <= 300_000,
        "access lifecycle uses {} gas",
        report.access_lifecycle_total
    );
    assert_eq!(
        report.access_lifecycle_total,
        report.create_agreement_and_pay + report.fulfil_access + report.release_payment
    );
}
