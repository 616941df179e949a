//! `model_agrees_with_evm`: the reference model's prediction and state against the EVM's.
//!
//! After every step: the outcome (success, or the same error), every balance of every holder in
//! every token and in ETH (read straight from storage, which costs nanoseconds), and, through the
//! contracts' views, everything the step changed according to the model or named in its events.
//! At the end of every sequence: the whole state the model knows.

use alloy::primitives::{Address, B256, Log, U256};
use alloy::sol_types::SolCall;
use insitu_bindings::{
    AgreementStore, AssetRegistry, BlocklistToken, MockERC20, PaymentCondition, PermitToken,
    ReentrantReceiver, ReentrantToken,
};

use super::actions::Role;
use super::env::{Env, TokenKind};
use super::invariants::{Outcome, Violation};
use super::model::{CondState, Dirty, Ev, Expected, Model, modelled_events};

const NAME: &str = "model_agrees_with_evm";

fn mismatch(message: impl Into<String>) -> Violation {
    Violation::new(NAME, message)
}

fn view<C: SolCall>(env: &mut Env, to: Address, call: &C) -> Result<C::Return, Violation> {
    env.chain
        .call(to, call)
        .map_err(|err| mismatch(format!("view {} failed: {err}", C::SIGNATURE)))
}

/// Compares the outcome of a step with the model's prediction.
pub fn outcome(expected: &Expected, actual: &Outcome) -> Result<(), Violation> {
    match (expected, &actual.error) {
        (Expected::Ok, None) => Ok(()),
        (Expected::Err(e), Some(a)) if e == a => Ok(()),
        (Expected::Ok, Some(a)) => Err(mismatch(format!(
            "the model expected success, the EVM reverted with {a}"
        ))),
        (Expected::Err(e), None) => Err(mismatch(format!(
            "the model expected a revert with {e}, the EVM succeeded"
        ))),
        (Expected::Err(e), Some(a)) => Err(mismatch(format!(
            "the model expected a revert with {e}, the EVM reverted with {a}"
        ))),
    }
}

/// Compares the receipt's events of the kinds the model emits with the model's, in order.
pub fn events(env: &Env, expected: &[Ev], logs: &[Log]) -> Result<(), Violation> {
    let modelled = modelled_events();
    let actual: Vec<Ev> = logs
        .iter()
        .filter_map(|log| {
            let topic0 = *log.topics().first()?;
            modelled.contains(&topic0).then(|| Ev {
                emitter: log.address,
                topic0,
                topic1: log.topics().get(1).copied().unwrap_or_default(),
            })
        })
        .collect();
    if actual == expected {
        return Ok(());
    }
    let describe = |events: &[Ev]| -> String {
        events
            .iter()
            .map(|e| {
                format!(
                    "{}:{}({})",
                    env.name(e.emitter),
                    event_name(e.topic0),
                    e.topic1
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(mismatch(format!(
        "events differ: the EVM emitted [{}], the model expected [{}]",
        describe(&actual),
        describe(expected)
    )))
}

fn event_name(topic0: B256) -> &'static str {
    const NAMES: [&str; 12] = [
        "AgreementCreated",
        "ConditionFulfilled",
        "ConditionAborted",
        "PaymentReleased",
        "PaymentRefunded",
        "PaymentCredited",
        "CreditWithdrawn",
        "FeesWithdrawn",
        "AccessGranted",
        "ComputeExecuted",
        "AssetRegistered",
        "Transfer",
    ];
    modelled_events()
        .iter()
        .position(|t| *t == topic0)
        .map_or("?", |i| NAMES[i])
}

/// Compares every balance of every holder.
pub fn balances(env: &Env, model: &Model) -> Result<(), Violation> {
    for &(holder, slot) in env.holder_slots() {
        for kind in TokenKind::ALL {
            let token = env.token(kind);
            let actual = if token.is_zero() {
                env.chain.balance(holder)
            } else {
                env.chain.storage(token, slot)
            };
            let expected = model.balance(token, holder);
            if actual != expected {
                return Err(mismatch(format!(
                    "{} holds {actual} {}, the model says {expected}",
                    env.name(holder),
                    kind.name()
                )));
            }
        }
    }
    Ok(())
}

/// Compares what `dirty` names.
pub fn dirty(env: &mut Env, model: &Model, dirty: &Dirty) -> Result<(), Violation> {
    for id in &dirty.conditions {
        condition(env, model, *id)?;
    }
    for (token, account) in &dirty.credits {
        credit(env, model, *token, *account)?;
    }
    for token in &dirty.escrow_tokens {
        escrow_totals(env, model, *token)?;
    }
    for (token, owner, spender) in &dirty.allowances {
        let actual = view(
            env,
            *token,
            &MockERC20::allowanceCall {
                owner: *owner,
                spender: *spender,
            },
        )?;
        let expected = model
            .ledgers
            .get(token)
            .and_then(|l| l.allowances.get(&(*owner, *spender)))
            .copied()
            .unwrap_or_default();
        if actual != expected {
            return Err(mismatch(format!(
                "allowance of {} to {} in {}: {actual}, the model says {expected}",
                env.name(*owner),
                env.name(*spender),
                env.name(*token)
            )));
        }
    }
    for did in &dirty.assets {
        asset(env, model, *did)?;
    }
    for template in &dirty.templates {
        template_state(env, model, *template)?;
    }
    for (role, account) in &dirty.roles {
        role_holder(env, model, *role, *account)?;
    }
    if dirty.fee {
        fee(env, model)?;
    }
    for account in &dirty.blocked {
        let token = env.token(TokenKind::Blocklist);
        let actual = view(
            env,
            token,
            &BlocklistToken::blockedCall { account: *account },
        )?;
        if actual != model.blocked.contains(account) {
            return Err(mismatch(format!(
                "{} blocklisted: {actual}, the model says the opposite",
                env.name(*account)
            )));
        }
    }
    if dirty.arms {
        arms(env, model)?;
    }
    let permit = env.token(TokenKind::Permit);
    for owner in &dirty.nonces {
        let actual = view(env, permit, &PermitToken::noncesCall { owner: *owner })?;
        let expected = model.nonces.get(owner).copied().unwrap_or_default();
        if actual != expected {
            return Err(mismatch(format!(
                "permit nonce of {}: {actual}, the model says {expected}",
                env.name(*owner)
            )));
        }
    }
    Ok(())
}

fn condition(env: &mut Env, model: &Model, id: B256) -> Result<(), Violation> {
    let s = env.suite;
    let actual = view(
        env,
        s.agreement_store,
        &AgreementStore::getConditionCall { conditionId: id },
    )?;
    let expected = model.conditions.get(&id).copied();
    let state = CondState::from_u8(actual.state);
    let same = match expected {
        None => state == CondState::Uninitialized,
        Some(c) => {
            state == c.state
                && actual.conditionContract == c.contract
                && actual.timeLock.to::<u64>() == c.time_lock
                && actual.timeOut.to::<u64>() == c.time_out
        }
    };
    if !same {
        return Err(mismatch(format!(
            "condition {id}: store has {state:?} (contract {}, window {}..{}), the model {:?}",
            env.name(actual.conditionContract),
            actual.timeLock,
            actual.timeOut,
            expected
        )));
    }
    Ok(())
}

fn credit(env: &mut Env, model: &Model, token: Address, account: Address) -> Result<(), Violation> {
    let s = env.suite;
    let actual = view(
        env,
        s.payment,
        &PaymentCondition::creditsCall { token, account },
    )?;
    let expected = model
        .credits
        .get(&(token, account))
        .copied()
        .unwrap_or_default();
    if actual != expected {
        return Err(mismatch(format!(
            "credit of {} in {}: {actual}, the model says {expected}",
            env.name(account),
            token_name(env, token)
        )));
    }
    Ok(())
}

fn escrow_totals(env: &mut Env, model: &Model, token: Address) -> Result<(), Violation> {
    let s = env.suite;
    let credits = view(
        env,
        s.payment,
        &PaymentCondition::totalCreditsCall { token },
    )?;
    let fees = view(env, s.payment, &PaymentCondition::accruedFeesCall { token })?;
    let expected_credits = model.total_credits.get(&token).copied().unwrap_or_default();
    let expected_fees = model.accrued.get(&token).copied().unwrap_or_default();
    if credits != expected_credits || fees != expected_fees {
        return Err(mismatch(format!(
            "escrow totals of {}: credits {credits}, fees {fees}; the model says {expected_credits} and {expected_fees}",
            token_name(env, token)
        )));
    }
    Ok(())
}

fn asset(env: &mut Env, model: &Model, did: B256) -> Result<(), Violation> {
    let s = env.suite;
    let actual = view(env, s.asset_registry, &AssetRegistry::getAssetCall { did })?;
    let expected = model.assets.get(&did).cloned().unwrap_or_default();
    let pending = view(
        env,
        s.asset_registry,
        &AssetRegistry::pendingOwnerOfCall { did },
    )?;
    if actual.owner != expected.owner
        || actual.checksum != expected.checksum
        || actual.url != expected.url
        || actual.registeredAt.to::<u64>() != expected.registered_at
        || actual.ownerEpoch.to::<u64>() != expected.owner_epoch
        || actual.offerEpoch != expected.offer_epoch
        || pending != expected.pending_owner
    {
        return Err(mismatch(format!(
            "asset {did}: owner {} (pending {}) epochs {}/{} checksum {} url {:?}; the model says owner {} (pending {}) epochs {}/{} checksum {} url {:?}",
            env.name(actual.owner),
            env.name(pending),
            actual.ownerEpoch,
            actual.offerEpoch,
            actual.checksum,
            actual.url,
            env.name(expected.owner),
            env.name(expected.pending_owner),
            expected.owner_epoch,
            expected.offer_epoch,
            expected.checksum,
            expected.url
        )));
    }
    let mut accounts: Vec<Address> = env.addrs.actors.values().copied().collect();
    accounts.extend(expected.providers.iter().copied());
    accounts.extend(expected.delegates.iter().copied());
    accounts.sort();
    accounts.dedup();
    for account in accounts {
        let provider = view(
            env,
            s.asset_registry,
            &AssetRegistry::isProviderCall { did, account },
        )?;
        let delegate = view(
            env,
            s.asset_registry,
            &AssetRegistry::isDelegateCall { did, account },
        )?;
        if provider != expected.providers.contains(&account)
            || delegate != expected.delegates.contains(&account)
        {
            return Err(mismatch(format!(
                "asset {did}: {} provider {provider} delegate {delegate}, the model disagrees",
                env.name(account)
            )));
        }
    }
    Ok(())
}

fn template_state(env: &mut Env, model: &Model, template: Address) -> Result<(), Violation> {
    let s = env.suite;
    let actual = view(
        env,
        s.agreement_store,
        &AgreementStore::templateStateCall { template },
    )?;
    let expected = model
        .templates
        .get(&template)
        .map_or(0, |state| *state as u8);
    if actual != expected {
        return Err(mismatch(format!(
            "template {} is in state {actual}, the model says {expected}",
            env.name(template)
        )));
    }
    Ok(())
}

fn role_holder(
    env: &mut Env,
    model: &Model,
    role: Role,
    account: Address,
) -> Result<(), Violation> {
    let s = env.suite;
    let actual = view(
        env,
        s.agreement_store,
        &AgreementStore::hasRoleCall {
            role: role.id(),
            account,
        },
    )?;
    if actual != model.roles.contains(&(role, account)) {
        return Err(mismatch(format!(
            "{} holds {role:?}: {actual}, the model says the opposite",
            env.name(account)
        )));
    }
    Ok(())
}

fn fee(env: &mut Env, model: &Model) -> Result<(), Violation> {
    let s = env.suite;
    let actual = view(env, s.payment, &PaymentCondition::networkFeeCall {})?;
    if (actual.receiver, actual.bps) != model.fee {
        return Err(mismatch(format!(
            "network fee {} bps to {}, the model says {} bps to {}",
            actual.bps,
            env.name(actual.receiver),
            model.fee.1,
            env.name(model.fee.0)
        )));
    }
    Ok(())
}

fn arms(env: &mut Env, model: &Model) -> Result<(), Violation> {
    let token = env.token(TokenKind::Reentrant);
    let armed = view(env, token, &ReentrantToken::armedCall {})?;
    if armed != model.token_armed.is_some() {
        return Err(mismatch(format!(
            "the re-entrant token is armed: {armed}, the model says the opposite"
        )));
    }
    let attacker = env.attacker;
    let target = view(env, attacker, &ReentrantReceiver::targetCall {})?;
    let expected = model
        .attacker_arm
        .as_ref()
        .map_or(Address::ZERO, |call| call.target(&env.addrs));
    if target != expected {
        return Err(mismatch(format!(
            "the attacker targets {}, the model says {}",
            env.name(target),
            env.name(expected)
        )));
    }
    Ok(())
}

/// Compares everything the model knows (end of a sequence).
pub fn everything(env: &mut Env, model: &Model) -> Result<(), Violation> {
    balances(env, model)?;
    let mut all = Dirty {
        fee: true,
        arms: true,
        ..Dirty::default()
    };
    all.conditions.extend(model.conditions.keys().copied());
    all.assets.extend(model.assets.keys().copied());
    all.templates.extend(model.templates.keys().copied());
    all.blocked.extend(model.blocked.iter().copied());
    for holder in env.holders() {
        for kind in TokenKind::ALL {
            all.credits.insert((env.token(kind), holder));
        }
        for role in [Role::Admin, Role::Governor] {
            all.roles.insert((role, holder));
        }
    }
    for kind in TokenKind::ALL {
        all.escrow_tokens.insert(env.token(kind));
    }
    all.nonces.extend(model.nonces.keys().copied());
    for (token, ledger) in &model.ledgers {
        for (owner, spender) in ledger.allowances.keys() {
            all.allowances.insert((*token, *owner, *spender));
        }
    }
    dirty(env, model, &all)
}

/// Supply of each ERC20 against the model.
pub fn supplies(env: &mut Env, model: &Model) -> Result<(), Violation> {
    for kind in TokenKind::ALL {
        if kind == TokenKind::Eth {
            continue;
        }
        let token = env.token(kind);
        let actual = view(env, token, &MockERC20::totalSupplyCall {})?;
        let expected = model
            .ledgers
            .get(&token)
            .map(|l| l.supply)
            .unwrap_or(U256::ZERO);
        if actual != expected {
            return Err(mismatch(format!(
                "total supply of {}: {actual}, the model says {expected}",
                kind.name()
            )));
        }
    }
    Ok(())
}

fn token_name(env: &Env, token: Address) -> String {
    env.token_kind(token)
        .map_or_else(|| env.name(token), |kind| kind.name().to_owned())
}
