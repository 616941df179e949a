//! Gas used by each step of an agreement's life, measured from receipts on the in-memory EVM.
//!
//! Scenario: the suite as deployed by the deploy plan, a 1% network fee, a standard OpenZeppelin
//! ERC20 (the consumer approved the lock condition once, for the maximum), one provider receiver
//! plus the fee receiver (two receivers in all). Steady state: every figure is taken from the
//! second agreement between the same parties, after a first one went through the same steps, as
//! is usual for gas comparisons.
//!
//! `--json` prints, as the last line, one JSON object with integer fields.

use alloy::primitives::U256;
use anyhow::{Context, Result, ensure};
use clap::Parser;
use insitu_tests::harness::GasProfile;
use insitu_tests::world::{Service, World};
use serde::Serialize;

/// Prints the gas used by each step of the access and compute lifecycles.
#[derive(Debug, Parser)]
#[command(name = "gas-report")]
struct Args {
    /// Print one JSON object as the last line instead of a table.
    #[arg(long)]
    json: bool,
    /// Also print where the gas of each step of the access lifecycle goes.
    #[arg(long)]
    profile: bool,
}

/// The figures, in gas.
#[derive(Debug, Serialize)]
struct GasReport {
    register_asset: u64,
    create_agreement_and_lock: u64,
    create_agreement: u64,
    lock_payment: u64,
    fulfil_access: u64,
    fulfil_compute: u64,
    release_escrow: u64,
    refund_escrow: u64,
    access_lifecycle_total: u64,
    compute_lifecycle_total: u64,
    access_lifecycle_total_eth: u64,
    access_lifecycle_two_step_total: u64,
}

/// Gas of the one-transaction lifecycle of `service`: (create and lock, serve, release).
fn one_tx_lifecycle(world: &mut World, service: Service, eth: bool) -> Result<(u64, u64, u64)> {
    let token = if eth {
        alloy::primitives::Address::ZERO
    } else {
        world.token
    };
    let terms = World::terms(token, &[(world.provider, 1_000_000)]);
    let value = if eth {
        U256::from(1_010_000)
    } else {
        U256::ZERO
    };
    let (consumer, did, keeper) = (world.consumer, world.did, world.keeper);
    let (deal, created) = world
        .create_and_lock(service, consumer, did, terms, value)
        .context("create and lock")?;
    ensure!(deal.fee > U256::ZERO, "expected a network fee");
    let served = world.serve(&deal, keeper).context("serve")?;
    let released = world.release(&deal, keeper).context("release")?;
    Ok((created.gas_used, served.gas_used, released.gas_used))
}

/// Contract names by address, for the profile.
type Labels = std::collections::BTreeMap<alloy::primitives::Address, &'static str>;

fn measure(profile: bool) -> Result<(GasReport, Vec<(&'static str, GasProfile)>, Labels)> {
    let mut world = World::with_fee();

    // Asset registration: the owner's second asset, one provider.
    let (provider, keeper) = (world.provider, world.keeper);
    world.register_asset(provider, &[keeper]);
    let seed = world.seed();
    let register = world
        .chain
        .transact(
            provider,
            world.suite.asset_registry,
            &insitu_bindings::AssetRegistry::registerCall {
                seed,
                checksum: alloy::primitives::keccak256(b"metadata"),
                url: "https://provider.example/metadata.json".into(),
                providers: vec![keeper],
            },
        )
        .context("register asset")?
        .gas_used;

    let mut access = (0, 0, 0);
    let mut compute = (0, 0, 0);
    let mut access_eth = (0, 0, 0);
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

    // Two-step path and refund, steady state too.
    let mut two_step = (0, 0, 0, 0);
    let mut refund = 0;
    for _ in 0..2 {
        let terms = World::terms(world.token, &[(world.provider, 1_000_000)]);
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
        world.abort_service(&deal, consumer)?;
        refund = world.refund(&deal, consumer)?.gas_used;
    }

    let report = GasReport {
        register_asset: register,
        create_agreement_and_lock: access.0,
        create_agreement: two_step.0,
        lock_payment: two_step.1,
        fulfil_access: access.1,
        fulfil_compute: compute.1,
        release_escrow: access.2,
        refund_escrow: refund,
        access_lifecycle_total: access.0 + access.1 + access.2,
        compute_lifecycle_total: compute.0 + compute.1 + compute.2,
        access_lifecycle_total_eth: access_eth.0 + access_eth.1 + access_eth.2,
        access_lifecycle_two_step_total: two_step.0 + two_step.1 + two_step.2 + two_step.3,
    };
    let mut labels: Labels = world
        .suite
        .by_name()
        .into_iter()
        .filter_map(|(name, address)| {
            insitu_bindings::CONTRACTS
                .iter()
                .find(|known| **known == name)
                .map(|known| (address, *known))
        })
        .collect();
    labels.insert(world.token, "token (OpenZeppelin ERC20)");
    Ok((report, profiles, labels))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (report, profiles, labels) = measure(args.profile)?;
    for (function, profile) in &profiles {
        println!("{function}: {} gas before refund", profile.total());
        for (part, gas) in profile.parts() {
            if gas != 0 {
                println!("    {part:<16} {gas:>8}");
            }
        }
        for (address, gas) in &profile.by_contract {
            println!("    in {:<24} {gas:>8}", labels.get(address).copied().unwrap_or("?"));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let value = serde_json::to_value(&report)?;
    let fields = value.as_object().context("report is an object")?;
    println!("{:<36} {:>10}", "step (steady state, ERC20, 1% fee)", "gas");
    for (name, gas) in fields {
        println!("{name:<36} {:>10}", gas);
    }
    Ok(())
}
