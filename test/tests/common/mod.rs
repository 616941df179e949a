//! Helpers shared by the agreement store, generic condition and governance tests: a
//! `PassthroughTemplate` approved through the governance timelock, condition specs, and the id
//! derivations of `AgreementIds`.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    sol_types::SolValue,
};
use insitu_bindings::{AgreementStore, PassthroughTemplate};
use insitu_tests::harness::{Receipt, TxError};
use insitu_tests::world::World;

/// A condition spec as the passthrough template takes it: `time_lock` and `time_out` are
/// seconds after creation (0: none).
pub(crate) fn spec(
    condition_contract: Address,
    value_hash: B256,
    time_lock: u32,
    time_out: u32,
) -> PassthroughTemplate::ConditionSpec {
    PassthroughTemplate::ConditionSpec {
        conditionContract: condition_contract,
        valueHash: value_hash,
        timeLock: time_lock,
        timeOut: time_out,
    }
}

/// `keccak256(abi.encode(seed, consumer, firstConditionContract, firstValueHash))`: the id of the
/// agreement `consumer` creates with `seed` and first condition `first`.
pub(crate) fn agreement_id(
    seed: B256,
    consumer: Address,
    first: &PassthroughTemplate::ConditionSpec,
) -> B256 {
    keccak256((seed, consumer, first.conditionContract, first.valueHash).abi_encode_params())
}

/// `keccak256(abi.encode(agreementId, conditionContract, valueHash))`.
pub(crate) fn condition_id(
    agreement_id: B256,
    condition_contract: Address,
    value_hash: B256,
) -> B256 {
    keccak256((agreement_id, condition_contract, value_hash).abi_encode_params())
}

/// Deploys a `PassthroughTemplate` on the world's store from `outsider`, who also proposes it;
/// the governor approves it. Returns its address.
///
/// # Panics
///
/// If any step reverts.
pub(crate) fn approved_passthrough(w: &mut World) -> Address {
    let template = deploy_passthrough(w, w.outsider);
    let store = w.suite.agreement_store;
    let outsider = w.outsider;
    w.chain
        .transact(
            outsider,
            store,
            &AgreementStore::proposeTemplateCall { template },
        )
        .expect("propose the passthrough template");
    approve_template(w, template).expect("approve the passthrough template");
    template
}

/// The governor approves a proposed `template` through the governance timelock.
///
/// # Errors
///
/// The revert of the approval.
pub(crate) fn approve_template(w: &mut World, template: Address) -> Result<(), TxError> {
    use alloy::sol_types::SolCall;
    let store = w.suite.agreement_store;
    let call = AgreementStore::approveTemplateCall { template }.abi_encode();
    w.govern(&[(store, call)]).map(|_| ())
}

/// The governor revokes `template` through the governance timelock.
///
/// # Errors
///
/// The revert of the revocation.
pub(crate) fn revoke_template(w: &mut World, template: Address) -> Result<(), TxError> {
    use alloy::sol_types::SolCall;
    let store = w.suite.agreement_store;
    let call = AgreementStore::revokeTemplateCall { template }.abi_encode();
    w.govern(&[(store, call)]).map(|_| ())
}

/// The governor carries out `call` on `target` through the governance timelock (one batch).
///
/// # Errors
///
/// The revert of the execution, which carries the revert of `call`.
pub(crate) fn govern_call<C: alloy::sol_types::SolCall>(
    w: &mut World,
    target: Address,
    call: &C,
) -> Result<Receipt<alloy::primitives::Bytes>, TxError> {
    w.govern(&[(target, call.abi_encode())])
}

/// The same spec as the store's own ABI type (for `createAgreement` and `agreementIdOf`).
pub(crate) fn store_spec(
    spec: &PassthroughTemplate::ConditionSpec,
) -> AgreementStore::ConditionSpec {
    AgreementStore::ConditionSpec {
        conditionContract: spec.conditionContract,
        valueHash: spec.valueHash,
        timeLock: spec.timeLock,
        timeOut: spec.timeOut,
    }
}

/// The store's `agreementIdOf(seed, consumer, first)`.
///
/// # Panics
///
/// If the view fails.
pub(crate) fn agreement_id_of(
    w: &mut World,
    seed: B256,
    consumer: Address,
    first: &PassthroughTemplate::ConditionSpec,
) -> B256 {
    w.chain
        .call(
            w.suite.agreement_store,
            &AgreementStore::agreementIdOfCall {
                seed,
                consumer,
                firstCondition: store_spec(first),
            },
        )
        .expect("agreementIdOf")
}

/// Deploys a `PassthroughTemplate` on the world's store from `from`, without proposing it.
///
/// # Panics
///
/// If the deployment reverts.
pub(crate) fn deploy_passthrough(w: &mut World, from: Address) -> Address {
    let store = w.suite.agreement_store;
    w.chain
        .deploy(
            from,
            &PassthroughTemplate::BYTECODE,
            &PassthroughTemplate::constructorCall { store },
        )
        .expect("deploy PassthroughTemplate")
}

/// `consumer` creates an agreement with `specs` through the passthrough `template`.
///
/// # Errors
///
/// The revert of the transaction.
pub(crate) fn create(
    w: &mut World,
    template: Address,
    consumer: Address,
    seed: B256,
    did: B256,
    specs: Vec<PassthroughTemplate::ConditionSpec>,
) -> Result<Receipt<B256>, TxError> {
    let call = PassthroughTemplate::createCall {
        seed,
        did,
        conditions: specs,
    };
    w.transact(consumer, template, &call, U256::ZERO)
}

/// The store's record of a condition.
///
/// # Panics
///
/// If the view fails.
pub(crate) fn condition(w: &mut World, condition_id: B256) -> AgreementStore::Condition {
    w.chain
        .call(
            w.suite.agreement_store,
            &AgreementStore::getConditionCall {
                conditionId: condition_id,
            },
        )
        .expect("getCondition")
}

/// The store's records of `ids`, for before/after comparisons around a reverted call.
pub(crate) fn conditions(w: &mut World, ids: &[B256]) -> Vec<AgreementStore::Condition> {
    ids.iter().map(|id| condition(w, *id)).collect()
}

/// Whether the store reports the condition as timed out.
///
/// # Panics
///
/// If the view fails.
pub(crate) fn is_timed_out(w: &mut World, condition_id: B256) -> bool {
    w.chain
        .call(
            w.suite.agreement_store,
            &AgreementStore::isTimedOutCall {
                conditionId: condition_id,
            },
        )
        .expect("isTimedOut")
}

/// A uint40 timestamp as the bindings return it.
pub(crate) fn u40(seconds: u64) -> alloy::primitives::aliases::U40 {
    alloy::primitives::aliases::U40::from(seconds)
}
