//! The planted bugs: copies of production contracts with one deliberate defect each, kept under
//! `test/fixtures/planted/` and compiled only with the bindings' `fixtures` feature. They prove
//! that the fuzzer finds what it claims to look for (`tests/fuzz_planted.rs`, and
//! `fuzz --features planted -- --plant NAME`).
//!
//! This module only describes them; the creation code comes from `insitu_bindings::fixtures`,
//! which exists only where the `fixtures` feature is on (see [`Planted::overrides`]).

use std::collections::BTreeMap;

use alloy::primitives::Bytes;

use super::env::Overrides;

/// One planted bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planted {
    /// Name of the broken copy (its contract name in `test/fixtures/planted/`).
    pub name: &'static str,
    /// The suite contract it replaces (as in `SuiteAddresses::by_name`).
    pub replaces: &'static str,
    /// The invariant the fuzzer must report.
    pub invariant: &'static str,
    /// What is wrong with it.
    pub defect: &'static str,
}

impl Planted {
    /// The deployment overrides putting `code` (this copy's creation code) in place.
    pub fn overrides(&self, code: Bytes) -> Overrides {
        Overrides {
            name: Some(self.name.to_owned()),
            code: BTreeMap::from([(self.replaces.to_owned(), code)]),
        }
    }
}

/// Every planted bug.
pub const PLANTED: &[Planted] = &[
    Planted {
        name: "PaymentReleaseTwice",
        replaces: "PaymentCondition",
        invariant: "settlement_exactly_once",
        defect: "release ignores the store's refusal to settle, so a payment is paid out again",
    },
    Planted {
        name: "PaymentRefundWithoutAbort",
        replaces: "PaymentCondition",
        invariant: "refund_implies_aborted",
        defect: "refund accepts a service condition that is merely not Fulfilled yet",
    },
    Planted {
        name: "PaymentWithdrawTwice",
        replaces: "PaymentCondition",
        invariant: "escrow_solvency",
        defect: "withdraw pays a credit without clearing it",
    },
    Planted {
        name: "PaymentAcceptsLess",
        replaces: "PaymentCondition",
        invariant: "only_payer_locks",
        defect: "an ETH payment accepts any value up to the total",
    },
    Planted {
        name: "PaymentFeeRoundsUp",
        replaces: "PaymentCondition",
        invariant: "fee_is_configured_bps",
        defect: "the network fee quote rounds up instead of down",
    },
    Planted {
        name: "AccessWithoutLock",
        replaces: "AccessCondition",
        invariant: "service_implies_lock",
        defect: "access is granted without checking that the payment is in escrow",
    },
    Planted {
        name: "StoreLateFulfil",
        replaces: "AgreementStore",
        invariant: "time_windows_respected",
        defect: "a condition can still be fulfilled at the exact second it times out",
    },
];
