//! The gas benchmark of the contract suite: what each step of an agreement's life costs,
//! measured from receipts on the in-memory EVM.
//!
//! Scenario: the suite as the deploy plan deploys it, a 1% network fee, a standard OpenZeppelin
//! ERC20 that the consumer approved once for the maximum, one provider receiver plus the network
//! fee (two payees in all). Steady state: every figure comes from the second agreement between the
//! same parties, after a first one went through the same steps, as is usual for gas comparisons.
//! After a release the escrow still holds the accrued network fee, so the next lock writes a
//! non-zero escrow balance; that is part of the design (fees are withdrawn in bulk).
//!
//! The figures are deterministic: the committed snapshot (`gas-snapshot.json` at the repository
//! root) is checked against them by the test suite, so every change shows its gas diff.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256, keccak256};
use serde::{Deserialize, Serialize};

use crate::harness::{GasProfile, TxError};
use crate::world::{Service, World};

/// Price paid to the provider in the benchmark, before the 1% network fee.
pub const PRICE: u64 = 1_000_000;

/// The figures, in gas, as printed by `gas-report --json` and kept in `gas-snapshot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GasReport {
    /// An owner's second asset, one provider.
    pub register_asset: u64,
    /// Create an access agreement and pay into escrow, one transaction (ERC20).
    pub create_agreement_and_lock: u64,
    /// Create an access agreement without paying (two-step path).
    pub create_agreement: u64,
    /// Pay for an agreement created before (two-step path).
    pub lock_payment: u64,
    /// The provider's keeper fulfils the access condition.
    pub fulfil_access: u64,
    /// The provider's keeper fulfils the compute execution condition.
    pub fulfil_compute: u64,
    /// Release the escrow: pay the provider, accrue the fee.
    pub release_escrow: u64,
    /// The keeper's path: fulfil access and release in one transaction (`fulfilAndRelease`).
    pub fulfil_access_and_release: u64,
    /// Refund the consumer after the access condition timed out and was aborted.
    pub refund_escrow: u64,
    /// Abort a timed-out access condition.
    pub abort_timed_out: u64,
    /// create-and-lock + fulfil access + release (ERC20, provider + network fee).
    pub access_lifecycle_total: u64,
    /// create-and-lock + fulfil compute + release (ERC20, provider + network fee).
    pub compute_lifecycle_total: u64,
    /// The access lifecycle paid in native ETH.
    pub access_lifecycle_total_eth: u64,
    /// create + lock + fulfil access + release (ERC20).
    pub access_lifecycle_two_step_total: u64,
    /// create-and-lock + fulfil-and-release: the lifecycle as the keeper runs it, two
    /// transactions (ERC20, provider + network fee).
    pub access_lifecycle_keeper_total: u64,
    /// The access lifecycle with no network fee and one receiver (the escrow is empty between
    /// agreements, so each lock writes a zero escrow balance).
    pub access_lifecycle_total_no_fee: u64,
}

/// A measurement: the figures, and optionally where the gas of each access-lifecycle step went.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The figures.
    pub report: GasReport,
    /// (function signature, profile) of each step of the steady-state access lifecycle, when
    /// profiling was asked for.
    pub profiles: Vec<(&'static str, GasProfile)>,
    /// Names of the contracts by address, to read the profiles.
    pub labels: BTreeMap<Address, String>,
}

/// Gas of one one-transaction lifecycle of `service`: (create and lock, serve, release).
fn one_tx_lifecycle(
    world: &mut World,
    service: Service,
    eth: bool,
) -> Result<(u64, u64, u64), TxError> {
    let token = if eth { Address::ZERO } else { world.token };
    let terms = World::terms(token, &[(world.provider, PRICE)]);
    let value = if eth {
        U256::from(PRICE + PRICE / 100)
    } else {
        U256::ZERO
    };
    let (consumer, did, keeper) = (world.consumer, world.did, world.keeper);
    let (deal, created) = world.create_and_lock(service, consumer, did, terms, value)?;
    let served = world.serve(&deal, keeper)?;
    let released = world.release(&deal, keeper)?;
    Ok((created.gas_used, served.gas_used, released.gas_used))
}

/// Runs the benchmark. With `profile`, also profiles the steps of the steady-state access
/// lifecycle.
///
/// # Errors
///
/// The first transaction that fails (a contract or harness defect).
pub fn measure(profile: bool) -> Result<Measurement, TxError> {
    let mut world = World::with_fee();
    let (provider, keeper) = (world.provider, world.keeper);

    // Asset registration: the owner's second asset (the world registered the first).
    let seed = world.seed();
    let register = world
        .transact(
            provider,
            world.suite.asset_registry,
            &insitu_bindings::AssetRegistry::registerCall {
                seed,
                checksum: keccak256(b"metadata"),
                url: "https://provider.example/metadata.json".into(),
                providers: vec![keeper],
            },
            U256::ZERO,
        )?
        .gas_used;

    let (mut access, mut compute, mut access_eth) = ((0, 0, 0), (0, 0, 0), (0, 0, 0));
    let mut profiles = Vec::new();
    for round in 0..2 {
        if profile && round == 1 {
            world.profiles = Some(Vec::new());
        }
        access = one_tx_lifecycle(&mut world, Service::Access, false)?;
        if let Some(taken) = world.profiles.take() {
            profiles = taken;
        }
        compute = one_tx_lifecycle(&mut world, Service::Compute, false)?;
        access_eth = one_tx_lifecycle(&mut world, Service::Access, true)?;
    }

    let (mut two_step, mut refund, mut abort) = ((0, 0, 0, 0), 0, 0);
    for _ in 0..2 {
        let terms = World::terms(world.token, &[(world.provider, PRICE)]);
        let (consumer, did) = (world.consumer, world.did);
        let (deal, created) = world.create(Service::Access, consumer, did, terms.clone())?;
        let locked = world.lock(&deal, consumer, U256::ZERO)?;
        let served = world.serve(&deal, keeper)?;
        let released = world.release(&deal, keeper)?;
        two_step = (
            created.gas_used,
            locked.gas_used,
            served.gas_used,
            released.gas_used,
        );

        let (deal, _) = world.create_and_lock(Service::Access, consumer, did, terms, U256::ZERO)?;
        world.chain.warp(4 * 24 * 3600);
        abort = world.abort_service(&deal, consumer)?.gas_used;
        refund = world.refund(&deal, consumer)?.gas_used;
    }

    let mut keeper_path = (0, 0);
    for _ in 0..2 {
        let terms = World::terms(world.token, &[(world.provider, PRICE)]);
        let (consumer, did) = (world.consumer, world.did);
        let (deal, created) =
            world.create_and_lock(Service::Access, consumer, did, terms, U256::ZERO)?;
        let settled = world.serve_and_release(&deal, keeper)?;
        keeper_path = (created.gas_used, settled.gas_used);
    }

    let mut plain = World::new();
    let mut no_fee = (0, 0, 0);
    for _ in 0..2 {
        no_fee = one_tx_lifecycle(&mut plain, Service::Access, false)?;
    }

    let report = GasReport {
        register_asset: register,
        create_agreement_and_lock: access.0,
        create_agreement: two_step.0,
        lock_payment: two_step.1,
        fulfil_access: access.1,
        fulfil_compute: compute.1,
        release_escrow: access.2,
        fulfil_access_and_release: keeper_path.1,
        refund_escrow: refund,
        abort_timed_out: abort,
        access_lifecycle_total: access.0 + access.1 + access.2,
        compute_lifecycle_total: compute.0 + compute.1 + compute.2,
        access_lifecycle_total_eth: access_eth.0 + access_eth.1 + access_eth.2,
        access_lifecycle_two_step_total: two_step.0 + two_step.1 + two_step.2 + two_step.3,
        access_lifecycle_total_no_fee: no_fee.0 + no_fee.1 + no_fee.2,
        access_lifecycle_keeper_total: keeper_path.0 + keeper_path.1,
    };
    let mut labels: BTreeMap<Address, String> = world
        .suite
        .by_name()
        .into_iter()
        .map(|(name, address)| (address, name))
        .collect();
    labels.insert(world.token, "ERC20 token".to_owned());
    Ok(Measurement {
        report,
        profiles,
        labels,
    })
}
