//! The gas benchmark of the contract suite: what each step of an agreement's life costs,
//! measured from receipts on the in-memory EVM.
//!
//! Scenario: the suite as the deploy plan deploys it, a 1% network fee, a standard OpenZeppelin
//! ERC20 that the consumer approved once for the maximum, one provider receiver plus the network
//! fee (two payees in all). Steady state: every figure comes from the second agreement between the
//! same parties, after a first one went through the same steps, as is usual for gas comparisons.
//! After a release the escrow still holds the accrued network fee, so the next payment writes a
//! non-zero escrow balance; that is part of the design (fees are withdrawn in bulk). Every purchase
//! is made on the keeper's signed offer, verified on chain.
//!
//! The figures are deterministic: the committed snapshot (`gas-snapshot.json` at the repository
//! root) is checked against them by the test suite, so every change shows its gas diff.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256};
use insitu_bindings::PermitToken;
use serde::{Deserialize, Serialize};

use crate::harness::{GasProfile, TxError};
use crate::world::{Service, SignedOffer, World, metadata_checksum};

/// Price paid to the provider in the benchmark, before the 1% network fee.
pub const PRICE: u64 = 1_000_000;

/// The figures, in gas, as printed by `gas-report --json` and kept in `gas-snapshot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GasReport {
    /// An owner's second asset, one provider.
    pub register_asset: u64,
    /// Buy access on the provider's signed offer and pay into escrow, one transaction (ERC20,
    /// standing approval): `PaymentCondition.createAgreementAndPay`.
    pub create_agreement_and_pay: u64,
    /// The same with an EIP-2612 permit instead of a standing approval.
    pub create_agreement_and_pay_permit: u64,
    /// Create an access agreement on an offer without paying (two-step path).
    pub create_agreement: u64,
    /// Pay for an agreement created before (two-step path).
    pub lock_payment: u64,
    /// The provider's keeper fulfils the access condition.
    pub fulfil_access: u64,
    /// The provider's keeper fulfils the compute execution condition.
    pub fulfil_compute: u64,
    /// Release the payment: pay the provider, accrue the fee.
    pub release_payment: u64,
    /// The keeper's path: fulfil access and release in one transaction (`fulfilAndRelease`).
    pub fulfil_access_and_release: u64,
    /// The keeper's path for compute.
    pub fulfil_compute_and_release: u64,
    /// Refund the consumer after the access condition timed out and was aborted.
    pub refund_payment: u64,
    /// Abort a timed-out access condition.
    pub abort_timed_out: u64,
    /// create-and-pay + fulfil access + release (ERC20, provider + network fee).
    pub access_lifecycle_total: u64,
    /// create-and-pay + fulfil compute + release (ERC20, provider + network fee).
    pub compute_lifecycle_total: u64,
    /// The access lifecycle paid in native ETH.
    pub access_lifecycle_total_eth: u64,
    /// create + pay + fulfil access + release (ERC20).
    pub access_lifecycle_two_step_total: u64,
    /// create-and-pay + fulfil-and-release: the lifecycle as the keeper runs it, two transactions
    /// (ERC20, provider + network fee). The headline figure.
    pub access_lifecycle_keeper_total: u64,
    /// The keeper's path for compute.
    pub compute_lifecycle_keeper_total: u64,
    /// The keeper's path, the consumer paying with an EIP-2612 permit (no approve transaction).
    pub access_lifecycle_keeper_total_permit: u64,
    /// The access lifecycle with no network fee and one receiver (the escrow's balance of the
    /// token is empty between agreements, so each payment writes a zero balance).
    pub access_lifecycle_total_no_fee: u64,
}

/// A measurement: the figures, and optionally where the gas of each access-lifecycle step went.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The figures.
    pub report: GasReport,
    /// (function signature, profile) of each step of the steady-state keeper path, when
    /// profiling was asked for.
    pub profiles: Vec<(&'static str, GasProfile)>,
    /// Names of the contracts by address, to read the profiles.
    pub labels: BTreeMap<Address, String>,
}

/// The keeper's signed offer of `PRICE` in `token` to the provider, for `service`.
fn offer(world: &mut World, service: Service, token: Address) -> SignedOffer {
    let (did, provider) = (world.did, world.provider);
    let offer = world.offer(did, token, &[(provider, PRICE)]);
    world.sign_offer(service, offer)
}

/// Gas of one one-transaction lifecycle of `service`: (create and pay, serve, release).
fn one_tx_lifecycle(
    world: &mut World,
    service: Service,
    eth: bool,
) -> Result<(u64, u64, u64), TxError> {
    let token = if eth { Address::ZERO } else { world.token };
    let signed = offer(world, service, token);
    // The consumer caps its payment at the quoted total, as a client does.
    let total = world.quote(service, world.consumer, &signed);
    let value = if eth { total } else { U256::ZERO };
    let (consumer, keeper) = (world.consumer, world.keeper);
    let (deal, created) = world.buy_with(service, consumer, &signed, 0, total, value)?;
    let served = world.serve(&deal, keeper)?;
    let released = world.release(&deal, keeper)?;
    Ok((created.gas_used, served.gas_used, released.gas_used))
}

/// Gas of the keeper's path for `service`: (create and pay, fulfil and release).
fn keeper_path(world: &mut World, service: Service) -> Result<(u64, u64), TxError> {
    let token = world.token;
    let signed = offer(world, service, token);
    let (consumer, keeper) = (world.consumer, world.keeper);
    let total = world.quote(service, consumer, &signed);
    let (deal, created) = world.buy_with(service, consumer, &signed, 0, total, U256::ZERO)?;
    let settled = world.serve_and_release(&deal, keeper)?;
    Ok((created.gas_used, settled.gas_used))
}

/// Runs the benchmark. With `profile`, also profiles the steps of the steady-state keeper path.
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
                checksum: metadata_checksum(),
                url: "https://provider.example/metadata.json".into(),
                providers: vec![keeper],
            },
            U256::ZERO,
        )?
        .gas_used;

    let (mut access, mut compute, mut access_eth) = ((0, 0, 0), (0, 0, 0), (0, 0, 0));
    let (mut access_keeper, mut compute_keeper) = ((0, 0), (0, 0));
    let mut profiles = Vec::new();
    for round in 0..2 {
        access = one_tx_lifecycle(&mut world, Service::Access, false)?;
        compute = one_tx_lifecycle(&mut world, Service::Compute, false)?;
        access_eth = one_tx_lifecycle(&mut world, Service::Access, true)?;
        if profile && round == 1 {
            world.profiles = Some(Vec::new());
        }
        access_keeper = keeper_path(&mut world, Service::Access)?;
        if let Some(taken) = world.profiles.take() {
            profiles = taken;
        }
        compute_keeper = keeper_path(&mut world, Service::Compute)?;
    }

    let (mut two_step, mut refund, mut abort) = ((0, 0, 0, 0), 0, 0);
    for _ in 0..2 {
        let token = world.token;
        let signed = offer(&mut world, Service::Access, token);
        let consumer = world.consumer;
        let (deal, created) = world.create(Service::Access, consumer, &signed)?;
        let locked = world.lock(&deal, consumer, U256::ZERO)?;
        let served = world.serve(&deal, keeper)?;
        let released = world.release(&deal, keeper)?;
        two_step = (
            created.gas_used,
            locked.gas_used,
            served.gas_used,
            released.gas_used,
        );

        let token = world.token;
        let signed = offer(&mut world, Service::Access, token);
        let (deal, _) = world.buy(Service::Access, consumer, &signed, U256::ZERO)?;
        world.chain.warp(u64::from(deal.service_timeout));
        abort = world.abort_service(&deal, consumer)?.gas_used;
        refund = world.refund(&deal, consumer)?.gas_used;
    }

    // The permit path: a token with EIP-2612 and no standing approval.
    let permit_token = world
        .chain
        .deploy(
            world.governor,
            &PermitToken::BYTECODE,
            &PermitToken::constructorCall {
                name_: "Permit Token".into(),
                symbol_: "PT".into(),
            },
        )
        .expect("deploy the permit token");
    let consumer = world.consumer;
    world.mint(permit_token, consumer, U256::from(PRICE * 10));
    let mut permit_path = (0, 0);
    for _ in 0..2 {
        let signed = offer(&mut world, Service::Access, permit_token);
        let total = world.quote(Service::Access, consumer, &signed);
        let deadline = world.chain.timestamp() + 3600;
        let payment = world.suite.payment;
        let permit = world.sign_permit(permit_token, consumer, payment, total, deadline);
        let (deal, created) =
            world.buy_with_permit(Service::Access, consumer, &signed, total, permit)?;
        let settled = world.serve_and_release(&deal, keeper)?;
        permit_path = (created.gas_used, settled.gas_used);
    }

    let mut plain = World::new();
    let mut no_fee = (0, 0, 0);
    for _ in 0..2 {
        no_fee = one_tx_lifecycle(&mut plain, Service::Access, false)?;
    }

    let report = GasReport {
        register_asset: register,
        create_agreement_and_pay: access.0,
        create_agreement_and_pay_permit: permit_path.0,
        create_agreement: two_step.0,
        lock_payment: two_step.1,
        fulfil_access: access.1,
        fulfil_compute: compute.1,
        release_payment: access.2,
        fulfil_access_and_release: access_keeper.1,
        fulfil_compute_and_release: compute_keeper.1,
        refund_payment: refund,
        abort_timed_out: abort,
        access_lifecycle_total: access.0 + access.1 + access.2,
        compute_lifecycle_total: compute.0 + compute.1 + compute.2,
        access_lifecycle_total_eth: access_eth.0 + access_eth.1 + access_eth.2,
        access_lifecycle_two_step_total: two_step.0 + two_step.1 + two_step.2 + two_step.3,
        access_lifecycle_keeper_total: access_keeper.0 + access_keeper.1,
        compute_lifecycle_keeper_total: compute_keeper.0 + compute_keeper.1,
        access_lifecycle_keeper_total_permit: permit_path.0 + permit_path.1,
        access_lifecycle_total_no_fee: no_fee.0 + no_fee.1 + no_fee.2,
    };
    let mut labels: BTreeMap<Address, String> = world
        .suite
        .by_name()
        .into_iter()
        .map(|(name, address)| (address, name))
        .collect();
    labels.insert(world.token, "ERC20 token".to_owned());
    labels.insert(permit_token, "ERC20 permit token".to_owned());
    Ok(Measurement {
        report,
        profiles,
        labels,
    })
}
