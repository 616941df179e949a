//! What the fuzzer does: one [`Step`] is one transaction (or a move of the clock), with every
//! argument concrete, so a sequence saved as JSON replays exactly.

use std::collections::HashMap;
use std::fmt::Write as _;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::sol_types::{SolCall, SolValue};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, BlocklistToken, ComputeExecutionCondition,
    EscrowPaymentCondition, HashLockCondition, LockPaymentCondition, MockERC20,
    PassthroughTemplate, ReentrantReceiver, ReentrantToken, ServiceTemplate, SignCondition,
    ThresholdCondition, access_condition, compute_execution_condition, passthrough_template,
};
use serde::{Deserialize, Serialize};

use super::env::{Actor, Addrs, Env, TokenKind};
use crate::harness::CHAIN_ID;

/// The service a template sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// Access template and condition.
    Access,
    /// Compute template and compute execution condition.
    Compute,
}

/// Payment terms as the lock and the escrow take them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Payment {
    /// Token (zero: ETH).
    pub token: Address,
    /// Receivers.
    pub receivers: Vec<Address>,
    /// Amounts, one per receiver.
    pub amounts: Vec<U256>,
    /// Network fee.
    pub fee: U256,
}

impl Payment {
    /// Sum of the amounts and the fee, `None` on overflow.
    pub fn total(&self) -> Option<U256> {
        self.amounts
            .iter()
            .try_fold(self.fee, |sum, amount| sum.checked_add(*amount))
    }
}

/// Terms a consumer gives a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Terms {
    /// Token (zero: ETH).
    pub token: Address,
    /// Receivers.
    pub receivers: Vec<Address>,
    /// Amounts, one per receiver.
    pub amounts: Vec<U256>,
    /// Requested service time out in seconds (0: the default).
    pub service_timeout: u32,
}

/// A condition of a generic agreement made through the passthrough template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generic {
    /// EIP-712 signature of `signer` over `message`.
    Sign {
        /// Agreed signer.
        signer: Address,
        /// Agreed message.
        message: B256,
    },
    /// Preimage of `keccak256(preimage)`.
    HashLock {
        /// The secret.
        preimage: Bytes,
    },
    /// `threshold` of `inputs` Fulfilled.
    Threshold {
        /// Input conditions.
        inputs: Vec<B256>,
        /// How many must be Fulfilled.
        threshold: U256,
    },
    /// Any contract and value hash (e.g. an account with no code as condition contract).
    Raw {
        /// Condition contract.
        contract: Address,
        /// Value hash.
        value_hash: B256,
    },
}

/// A condition spec of a generic agreement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spec {
    /// What the condition is.
    pub generic: Generic,
    /// Seconds after creation before which it cannot be fulfilled.
    pub time_lock: u32,
    /// Seconds after creation from which it times out (0: never).
    pub time_out: u32,
}

/// A role of the agreement store's access control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `DEFAULT_ADMIN_ROLE`.
    Admin,
    /// `GOVERNOR_ROLE`.
    Governor,
}

impl Role {
    /// The role's id.
    pub fn id(self) -> B256 {
        match self {
            Role::Admin => B256::ZERO,
            Role::Governor => keccak256(b"insitu.governor"),
        }
    }
}

/// One external call of a contract of the suite, a token, an adversarial contract, or a move of
/// the clock. Every argument is concrete.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "fn", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Call {
    // ---- AssetRegistry ----
    Register {
        seed: B256,
        checksum: B256,
        url: String,
        providers: Vec<Address>,
    },
    RegisterDerived {
        seed: B256,
        checksum: B256,
        url: String,
        providers: Vec<Address>,
        sources: Vec<B256>,
        activity: B256,
    },
    UpdateMetadata {
        did: B256,
        checksum: B256,
        url: String,
    },
    TransferOwnership {
        did: B256,
        new_owner: Address,
    },
    AddProvider {
        did: B256,
        provider: Address,
    },
    RemoveProvider {
        did: B256,
        provider: Address,
    },
    GrantPermission {
        did: B256,
        delegate: Address,
    },
    RevokePermission {
        did: B256,
        delegate: Address,
    },
    /// `resignProvider`: the caller leaves the provider set.
    ResignProvider {
        did: B256,
    },
    RecordUse {
        did: B256,
        activity: B256,
    },
    RecordDerivation {
        did: B256,
        source: B256,
        activity: B256,
    },
    // ---- AgreementStore: template registry, roles, direct calls ----
    ProposeTemplate {
        template: Address,
    },
    ApproveTemplate {
        template: Address,
    },
    RevokeTemplate {
        template: Address,
    },
    GrantRole {
        role: Role,
        account: Address,
    },
    RevokeRole {
        role: Role,
        account: Address,
    },
    RenounceRole {
        role: Role,
        account: Address,
    },
    StoreCreate {
        seed: B256,
        consumer: Address,
        did: B256,
    },
    StoreFulfil {
        condition: B256,
    },
    StoreAbort {
        condition: B256,
    },
    // ---- Templates ----
    CreateAgreement {
        service: Service,
        seed: B256,
        did: B256,
        terms: Terms,
        and_lock: bool,
        value: U256,
    },
    Passthrough {
        seed: B256,
        did: B256,
        specs: Vec<Spec>,
    },
    // ---- LockPaymentCondition ----
    SetNetworkFee {
        receiver: Address,
        bps: u16,
    },
    Lock {
        agreement: B256,
        did: B256,
        escrow: Address,
        payment: Payment,
        value: U256,
    },
    LockFor {
        agreement: B256,
        did: B256,
        escrow: Address,
        payer: Address,
        payment: Payment,
        value: U256,
    },
    // ---- Service conditions ----
    Fulfil {
        service: Service,
        agreement: B256,
        did: B256,
        consumer: Address,
        lock: B256,
        result: B256,
    },
    FulfilAndRelease {
        service: Service,
        agreement: B256,
        did: B256,
        consumer: Address,
        lock: B256,
        result: B256,
        payment: Payment,
    },
    /// `abortTimedOut` on any condition contract.
    AbortTimedOut {
        contract: Address,
        condition: B256,
    },
    // ---- EscrowPaymentCondition ----
    Release {
        agreement: B256,
        did: B256,
        payer: Address,
        payment: Payment,
        release_conditions: Vec<B256>,
    },
    Refund {
        agreement: B256,
        did: B256,
        payer: Address,
        payment: Payment,
        release_conditions: Vec<B256>,
    },
    Withdraw {
        token: Address,
        to: Address,
    },
    WithdrawFees {
        token: Address,
        to: Address,
    },
    /// A plain ETH transfer (empty calldata).
    SendEth {
        to: Address,
        value: U256,
    },
    // ---- Generic conditions ----
    SignFulfil {
        agreement: B256,
        signer: Address,
        message: B256,
        /// Whose key signs (`None`: a malformed signature).
        key: Option<Actor>,
        /// The agreement and message actually signed.
        signed_agreement: B256,
        signed_message: B256,
    },
    HashLockFulfil {
        agreement: B256,
        preimage: Bytes,
    },
    ThresholdFulfil {
        agreement: B256,
        inputs: Vec<B256>,
        threshold: U256,
    },
    // ---- Tokens and adversarial contracts ----
    Mint {
        token: Address,
        to: Address,
        amount: U256,
    },
    Approve {
        token: Address,
        spender: Address,
        amount: U256,
    },
    Transfer {
        token: Address,
        to: Address,
        amount: U256,
    },
    /// `BlocklistToken.setBlocked`.
    SetBlocked {
        account: Address,
        blocked: bool,
    },
    /// `ReentrantToken.arm`: its next transfer makes `inner` (from the token). `None` arms it
    /// with an empty call to the zero address.
    ArmToken {
        inner: Option<Box<Call>>,
    },
    /// `ReentrantReceiver.arm` on the attacker: every ETH payment it receives makes `inner`.
    /// `None` disarms it.
    ArmAttacker {
        inner: Option<Box<Call>>,
    },
    // ---- Clock ----
    Warp {
        seconds: u64,
    },
    Mine {
        blocks: u64,
    },
}

/// One step of a sequence: `actor` makes `call`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    /// Who sends it (ignored for clock moves).
    pub actor: Actor,
    /// What is called.
    pub call: Call,
}

impl Call {
    /// Whether this moves the clock rather than sending a transaction.
    pub fn is_clock(&self) -> bool {
        matches!(self, Call::Warp { .. } | Call::Mine { .. })
    }

    /// Wei sent along.
    pub fn value(&self) -> U256 {
        match self {
            Call::CreateAgreement { value, .. }
            | Call::Lock { value, .. }
            | Call::LockFor { value, .. }
            | Call::SendEth { value, .. } => *value,
            _ => U256::ZERO,
        }
    }

    /// Short name of the function, for reports and statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Register { .. } => "register",
            Call::RegisterDerived { .. } => "registerDerived",
            Call::UpdateMetadata { .. } => "updateMetadata",
            Call::TransferOwnership { .. } => "transferOwnership",
            Call::AddProvider { .. } => "addProvider",
            Call::RemoveProvider { .. } => "removeProvider",
            Call::GrantPermission { .. } => "grantPermission",
            Call::RevokePermission { .. } => "revokePermission",
            Call::ResignProvider { .. } => "resignProvider",
            Call::RecordUse { .. } => "recordUse",
            Call::RecordDerivation { .. } => "recordDerivation",
            Call::ProposeTemplate { .. } => "proposeTemplate",
            Call::ApproveTemplate { .. } => "approveTemplate",
            Call::RevokeTemplate { .. } => "revokeTemplate",
            Call::GrantRole { .. } => "grantRole",
            Call::RevokeRole { .. } => "revokeRole",
            Call::RenounceRole { .. } => "renounceRole",
            Call::StoreCreate { .. } => "store.createAgreement",
            Call::StoreFulfil { .. } => "store.fulfil",
            Call::StoreAbort { .. } => "store.abort",
            Call::CreateAgreement {
                and_lock: false, ..
            } => "createAgreement",
            Call::CreateAgreement { and_lock: true, .. } => "createAgreementAndLock",
            Call::Passthrough { .. } => "passthrough.create",
            Call::SetNetworkFee { .. } => "setNetworkFee",
            Call::Lock { .. } => "lock",
            Call::LockFor { .. } => "lockFor",
            Call::Fulfil { .. } => "fulfil",
            Call::FulfilAndRelease { .. } => "fulfilAndRelease",
            Call::AbortTimedOut { .. } => "abortTimedOut",
            Call::Release { .. } => "release",
            Call::Refund { .. } => "refund",
            Call::Withdraw { .. } => "withdraw",
            Call::WithdrawFees { .. } => "withdrawFees",
            Call::SendEth { .. } => "sendEth",
            Call::SignFulfil { .. } => "sign.fulfil",
            Call::HashLockFulfil { .. } => "hashLock.fulfil",
            Call::ThresholdFulfil { .. } => "threshold.fulfil",
            Call::Mint { .. } => "mint",
            Call::Approve { .. } => "approve",
            Call::Transfer { .. } => "transfer",
            Call::SetBlocked { .. } => "setBlocked",
            Call::ArmToken { .. } => "armToken",
            Call::ArmAttacker { .. } => "armAttacker",
            Call::Warp { .. } => "warp",
            Call::Mine { .. } => "mine",
        }
    }

    /// The contract called.
    pub fn target(&self, env: &Addrs) -> Address {
        let s = env.suite();
        match self {
            Call::Register { .. }
            | Call::RegisterDerived { .. }
            | Call::UpdateMetadata { .. }
            | Call::TransferOwnership { .. }
            | Call::AddProvider { .. }
            | Call::RemoveProvider { .. }
            | Call::GrantPermission { .. }
            | Call::RevokePermission { .. }
            | Call::ResignProvider { .. }
            | Call::RecordUse { .. }
            | Call::RecordDerivation { .. } => s.asset_registry,
            Call::ProposeTemplate { .. }
            | Call::ApproveTemplate { .. }
            | Call::RevokeTemplate { .. }
            | Call::GrantRole { .. }
            | Call::RevokeRole { .. }
            | Call::RenounceRole { .. }
            | Call::StoreCreate { .. }
            | Call::StoreFulfil { .. }
            | Call::StoreAbort { .. } => s.agreement_store,
            Call::CreateAgreement { service, .. } => match service {
                Service::Access => s.access_template,
                Service::Compute => s.compute_template,
            },
            Call::Passthrough { .. } => env.passthrough,
            Call::SetNetworkFee { .. } | Call::Lock { .. } | Call::LockFor { .. } => s.lock_payment,
            Call::Fulfil { service, .. } | Call::FulfilAndRelease { service, .. } => {
                match service {
                    Service::Access => s.access,
                    Service::Compute => s.compute_execution,
                }
            }
            Call::AbortTimedOut { contract, .. } => *contract,
            Call::Release { .. }
            | Call::Refund { .. }
            | Call::Withdraw { .. }
            | Call::WithdrawFees { .. } => s.escrow_payment,
            Call::SendEth { to, .. } => *to,
            Call::SignFulfil { .. } => s.sign,
            Call::HashLockFulfil { .. } => s.hash_lock,
            Call::ThresholdFulfil { .. } => s.threshold,
            Call::Mint { token, .. }
            | Call::Approve { token, .. }
            | Call::Transfer { token, .. } => *token,
            Call::SetBlocked { .. } => env.token(TokenKind::Blocklist),
            Call::ArmToken { .. } => env.token(TokenKind::Reentrant),
            Call::ArmAttacker { .. } => env.attacker,
            Call::Warp { .. } | Call::Mine { .. } => Address::ZERO,
        }
    }

    /// The calldata.
    pub fn calldata(&self, env: &Env) -> Bytes {
        let data: Vec<u8> = match self.clone() {
            Call::Register {
                seed,
                checksum,
                url,
                providers,
            } => AssetRegistry::registerCall {
                seed,
                checksum,
                url,
                providers,
            }
            .abi_encode(),
            Call::RegisterDerived {
                seed,
                checksum,
                url,
                providers,
                sources,
                activity,
            } => AssetRegistry::registerDerivedCall {
                seed,
                checksum,
                url,
                providers,
                sources,
                activityId: activity,
            }
            .abi_encode(),
            Call::UpdateMetadata { did, checksum, url } => {
                AssetRegistry::updateMetadataCall { did, checksum, url }.abi_encode()
            }
            Call::TransferOwnership { did, new_owner } => AssetRegistry::transferOwnershipCall {
                did,
                newOwner: new_owner,
            }
            .abi_encode(),
            Call::AddProvider { did, provider } => {
                AssetRegistry::addProviderCall { did, provider }.abi_encode()
            }
            Call::RemoveProvider { did, provider } => {
                AssetRegistry::removeProviderCall { did, provider }.abi_encode()
            }
            Call::GrantPermission { did, delegate } => {
                AssetRegistry::grantPermissionCall { did, delegate }.abi_encode()
            }
            Call::RevokePermission { did, delegate } => {
                AssetRegistry::revokePermissionCall { did, delegate }.abi_encode()
            }
            Call::ResignProvider { did } => AssetRegistry::resignProviderCall { did }.abi_encode(),
            Call::RecordUse { did, activity } => AssetRegistry::recordUseCall {
                did,
                activityId: activity,
            }
            .abi_encode(),
            Call::RecordDerivation {
                did,
                source,
                activity,
            } => AssetRegistry::recordDerivationCall {
                did,
                sourceDid: source,
                activityId: activity,
            }
            .abi_encode(),
            Call::ProposeTemplate { template } => {
                AgreementStore::proposeTemplateCall { template }.abi_encode()
            }
            Call::ApproveTemplate { template } => {
                AgreementStore::approveTemplateCall { template }.abi_encode()
            }
            Call::RevokeTemplate { template } => {
                AgreementStore::revokeTemplateCall { template }.abi_encode()
            }
            Call::GrantRole { role, account } => AgreementStore::grantRoleCall {
                role: role.id(),
                account,
            }
            .abi_encode(),
            Call::RevokeRole { role, account } => AgreementStore::revokeRoleCall {
                role: role.id(),
                account,
            }
            .abi_encode(),
            Call::RenounceRole { role, account } => AgreementStore::renounceRoleCall {
                role: role.id(),
                callerConfirmation: account,
            }
            .abi_encode(),
            Call::StoreCreate {
                seed,
                consumer,
                did,
            } => AgreementStore::createAgreementCall {
                seed,
                consumer,
                did,
                conditions: Vec::new(),
            }
            .abi_encode(),
            Call::StoreFulfil { condition } => AgreementStore::fulfilCall {
                conditionId: condition,
            }
            .abi_encode(),
            Call::StoreAbort { condition } => AgreementStore::abortCall {
                conditionId: condition,
            }
            .abi_encode(),
            Call::CreateAgreement {
                seed,
                did,
                terms,
                and_lock,
                ..
            } => {
                let terms = ServiceTemplate::Terms {
                    token: terms.token,
                    receivers: terms.receivers,
                    amounts: terms.amounts,
                    serviceTimeout: terms.service_timeout,
                };
                if and_lock {
                    ServiceTemplate::createAgreementAndLockCall { seed, did, terms }.abi_encode()
                } else {
                    ServiceTemplate::createAgreementCall { seed, did, terms }.abi_encode()
                }
            }
            Call::Passthrough { seed, did, specs } => PassthroughTemplate::createCall {
                seed,
                did,
                conditions: specs
                    .iter()
                    .map(|spec| {
                        let (contract, value_hash) = spec.generic.contract_and_hash(&env.addrs);
                        passthrough_template::PassthroughTemplate::ConditionSpec {
                            conditionContract: contract,
                            valueHash: value_hash,
                            timeLock: spec.time_lock,
                            timeOut: spec.time_out,
                        }
                    })
                    .collect(),
            }
            .abi_encode(),
            Call::SetNetworkFee { receiver, bps } => {
                LockPaymentCondition::setNetworkFeeCall { receiver, bps }.abi_encode()
            }
            Call::Lock {
                agreement,
                did,
                escrow,
                payment,
                ..
            } => LockPaymentCondition::lockCall {
                agreementId: agreement,
                did,
                escrow,
                token: payment.token,
                receivers: payment.receivers,
                amounts: payment.amounts,
                fee: payment.fee,
            }
            .abi_encode(),
            Call::LockFor {
                agreement,
                did,
                escrow,
                payer,
                payment,
                ..
            } => LockPaymentCondition::lockForCall {
                agreementId: agreement,
                did,
                escrow,
                token: payment.token,
                payer,
                receivers: payment.receivers,
                amounts: payment.amounts,
                fee: payment.fee,
            }
            .abi_encode(),
            Call::Fulfil {
                service,
                agreement,
                did,
                consumer,
                lock,
                result,
            } => match service {
                Service::Access => AccessCondition::fulfilCall {
                    agreementId: agreement,
                    did,
                    consumer,
                    lockConditionId: lock,
                }
                .abi_encode(),
                Service::Compute => ComputeExecutionCondition::fulfilCall {
                    agreementId: agreement,
                    did,
                    consumer,
                    lockConditionId: lock,
                    result,
                }
                .abi_encode(),
            },
            Call::FulfilAndRelease {
                service,
                agreement,
                did,
                consumer,
                lock,
                result,
                payment,
            } => match service {
                Service::Access => AccessCondition::fulfilAndReleaseCall {
                    agreementId: agreement,
                    did,
                    consumer,
                    lockConditionId: lock,
                    payment: access_condition::ServiceCondition::Payment {
                        token: payment.token,
                        receivers: payment.receivers,
                        amounts: payment.amounts,
                        fee: payment.fee,
                    },
                }
                .abi_encode(),
                Service::Compute => ComputeExecutionCondition::fulfilAndReleaseCall {
                    agreementId: agreement,
                    did,
                    consumer,
                    lockConditionId: lock,
                    result,
                    payment: compute_execution_condition::ServiceCondition::Payment {
                        token: payment.token,
                        receivers: payment.receivers,
                        amounts: payment.amounts,
                        fee: payment.fee,
                    },
                }
                .abi_encode(),
            },
            Call::AbortTimedOut { condition, .. } => AccessCondition::abortTimedOutCall {
                conditionId: condition,
            }
            .abi_encode(),
            Call::Release {
                agreement,
                did,
                payer,
                payment,
                release_conditions,
            } => EscrowPaymentCondition::releaseCall {
                agreementId: agreement,
                did,
                token: payment.token,
                payer,
                receivers: payment.receivers,
                amounts: payment.amounts,
                fee: payment.fee,
                releaseConditions: release_conditions,
            }
            .abi_encode(),
            Call::Refund {
                agreement,
                did,
                payer,
                payment,
                release_conditions,
            } => EscrowPaymentCondition::refundCall {
                agreementId: agreement,
                did,
                token: payment.token,
                payer,
                receivers: payment.receivers,
                amounts: payment.amounts,
                fee: payment.fee,
                releaseConditions: release_conditions,
            }
            .abi_encode(),
            Call::Withdraw { token, to } => {
                EscrowPaymentCondition::withdrawCall { token, to }.abi_encode()
            }
            Call::WithdrawFees { token, to } => {
                EscrowPaymentCondition::withdrawFeesCall { token, to }.abi_encode()
            }
            Call::SendEth { .. } | Call::Warp { .. } | Call::Mine { .. } => Vec::new(),
            Call::SignFulfil {
                agreement,
                signer,
                message,
                key,
                signed_agreement,
                signed_message,
            } => SignCondition::fulfilCall {
                agreementId: agreement,
                signer,
                message,
                signature: signature(env, key, signed_agreement, signed_message),
            }
            .abi_encode(),
            Call::HashLockFulfil {
                agreement,
                preimage,
            } => HashLockCondition::fulfilCall {
                agreementId: agreement,
                preimage,
            }
            .abi_encode(),
            Call::ThresholdFulfil {
                agreement,
                inputs,
                threshold,
            } => ThresholdCondition::fulfilCall {
                agreementId: agreement,
                inputs,
                threshold,
            }
            .abi_encode(),
            Call::Mint { to, amount, .. } => MockERC20::mintCall { to, amount }.abi_encode(),
            Call::Approve {
                spender, amount, ..
            } => MockERC20::approveCall {
                spender,
                value: amount,
            }
            .abi_encode(),
            Call::Transfer { to, amount, .. } => {
                MockERC20::transferCall { to, value: amount }.abi_encode()
            }
            Call::SetBlocked { account, blocked } => BlocklistToken::setBlockedCall {
                account,
                isBlocked: blocked,
            }
            .abi_encode(),
            Call::ArmToken { inner } => {
                let (target, payload) = payload(env, inner.as_deref());
                ReentrantToken::armCall {
                    target_: target,
                    payload_: payload,
                }
                .abi_encode()
            }
            Call::ArmAttacker { inner } => {
                let (target, payload) = payload(env, inner.as_deref());
                ReentrantReceiver::armCall {
                    target_: target,
                    payload_: payload,
                }
                .abi_encode()
            }
        };
        data.into()
    }
}

/// Target and calldata of a re-entrant call (`None`: the zero address, empty calldata).
fn payload(env: &Env, inner: Option<&Call>) -> (Address, Bytes) {
    match inner {
        Some(call) => (call.target(&env.addrs), call.calldata(env)),
        None => (Address::ZERO, Bytes::new()),
    }
}

impl Generic {
    /// The condition contract and value hash of the spec.
    pub fn contract_and_hash(&self, addrs: &Addrs) -> (Address, B256) {
        let suite = addrs.suite();
        match self {
            Generic::Sign { signer, message } => (
                suite.sign,
                keccak256((*signer, *message).abi_encode_params()),
            ),
            Generic::HashLock { preimage } => {
                (suite.hash_lock, keccak256(keccak256(preimage).abi_encode()))
            }
            Generic::Threshold { inputs, threshold } => (
                suite.threshold,
                keccak256((inputs.clone(), *threshold).abi_encode_params()),
            ),
            Generic::Raw {
                contract,
                value_hash,
            } => (*contract, *value_hash),
        }
    }
}

/// EIP-712 digest the sign condition at `sign` checks for `agreement` and `message`.
pub fn sign_digest(sign: Address, agreement: B256, message: B256) -> B256 {
    let domain_type = keccak256(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
    );
    let domain = keccak256(
        (
            domain_type,
            keccak256(b"insitu.SignCondition"),
            keccak256(b"1"),
            U256::from(CHAIN_ID),
            sign,
        )
            .abi_encode(),
    );
    let typehash = keccak256(b"SignConditionFulfilment(bytes32 agreementId,bytes32 message)");
    let item = keccak256((typehash, agreement, message).abi_encode());
    let mut bytes = Vec::with_capacity(66);
    bytes.extend_from_slice(&[0x19, 0x01]);
    bytes.extend_from_slice(domain.as_slice());
    bytes.extend_from_slice(item.as_slice());
    keccak256(bytes)
}

/// The signature a step carries: `key`'s over (`agreement`, `message`), or 65 bytes of junk.
fn signature(env: &Env, key: Option<Actor>, agreement: B256, message: B256) -> Bytes {
    let digest = sign_digest(env.suite.sign, agreement, message);
    key.and_then(|actor| env.chain.signer(env.address(actor)))
        .and_then(|signer| signer.sign_hash_sync(&digest).ok())
        .map_or_else(
            || Bytes::from(vec![0x11; 65]),
            |signature| Bytes::from(signature.as_bytes().to_vec()),
        )
}

/// Names of addresses and ids for readable reports.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    addresses: HashMap<Address, String>,
    ids: HashMap<B256, String>,
    counts: HashMap<&'static str, usize>,
}

impl Labels {
    /// Labels knowing the environment's addresses.
    pub fn new(env: &Env) -> Self {
        let mut labels = Self {
            addresses: env.names().clone(),
            ..Self::default()
        };
        for (i, did) in env.dids.iter().enumerate() {
            labels.ids.insert(*did, format!("asset{i}"));
        }
        labels
    }

    /// Names `id` `<kind><n>` unless it already has a name.
    pub fn learn(&mut self, id: B256, kind: &'static str) {
        if self.ids.contains_key(&id) {
            return;
        }
        let n = self.counts.entry(kind).or_default();
        self.ids.insert(id, format!("{kind}{n}"));
        *n += 1;
    }

    /// `message` with every full-length id it quotes followed by its name, e.g.
    /// `0x12..ef (escrow0)`.
    pub fn annotate(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for (id, name) in &self.ids {
            let hex = format!("{id}");
            if out.contains(&hex) {
                out = out.replace(&hex, &format!("{} ({name})", short(id.as_slice())));
            }
        }
        for (address, name) in &self.addresses {
            let hex = format!("{address}");
            if out.contains(&hex) {
                out = out.replace(&hex, name);
            }
        }
        out
    }

    /// The name of an address.
    pub fn addr(&self, address: Address) -> String {
        self.addresses
            .get(&address)
            .cloned()
            .unwrap_or_else(|| short(address.as_slice()))
    }

    /// The name of an id.
    pub fn id(&self, id: B256) -> String {
        self.ids
            .get(&id)
            .cloned()
            .unwrap_or_else(|| short(id.as_slice()))
    }

    fn addrs(&self, list: &[Address]) -> String {
        let names: Vec<String> = list.iter().map(|a| self.addr(*a)).collect();
        format!("[{}]", names.join(", "))
    }

    fn ids(&self, list: &[B256]) -> String {
        let names: Vec<String> = list.iter().map(|a| self.id(*a)).collect();
        format!("[{}]", names.join(", "))
    }

    fn payment(&self, p: &Payment) -> String {
        let split: Vec<String> = p
            .receivers
            .iter()
            .zip(p.amounts.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(r, a)| match a {
                Some(a) => format!("{}: {}", self.addr(*r), amount(*a)),
                None => format!("{}: ?", self.addr(*r)),
            })
            .collect();
        let extra = p.amounts.len().saturating_sub(p.receivers.len());
        let extra = if extra > 0 {
            format!(" +{extra} amounts")
        } else {
            String::new()
        };
        format!(
            "{} [{}{extra}] fee {}",
            self.token(p.token),
            split.join(", "),
            amount(p.fee)
        )
    }

    fn token(&self, token: Address) -> String {
        if token.is_zero() {
            "ETH".to_owned()
        } else {
            self.addr(token)
        }
    }

    /// One line describing `step`.
    pub fn describe(&self, step: &Step) -> String {
        let who = self.addr_actor(step.actor);
        let c = &step.call;
        let mut s = String::new();
        let _ = match c {
            Call::Warp { seconds } => write!(s, "clock moves {seconds} s forward"),
            Call::Mine { blocks } => write!(s, "{blocks} block(s) mined"),
            _ => write!(s, "{who} calls {}", self.call(c)),
        };
        s
    }

    fn addr_actor(&self, actor: Actor) -> String {
        match actor {
            Actor::Governor => "governor".into(),
            Actor::FeeReceiver => "fee_receiver".into(),
            Actor::Provider(i) => format!("provider{i}"),
            Actor::Keeper(i) => format!("keeper{i}"),
            Actor::Consumer(i) => format!("consumer{i}"),
            Actor::Outsider(i) => format!("outsider{i}"),
            Actor::Attacker => "attacker".into(),
            Actor::Reverter => "reverter".into(),
        }
    }

    /// A call with its key arguments.
    pub fn call(&self, c: &Call) -> String {
        let name = c.name();
        match c {
            Call::Register {
                seed, providers, ..
            } => format!(
                "{name}(seed {}, providers {})",
                self.id(*seed),
                self.addrs(providers)
            ),
            Call::RegisterDerived {
                seed,
                providers,
                sources,
                ..
            } => format!(
                "{name}(seed {}, providers {}, sources {})",
                self.id(*seed),
                self.addrs(providers),
                self.ids(sources)
            ),
            Call::UpdateMetadata { did, .. } => format!("{name}({})", self.id(*did)),
            Call::TransferOwnership { did, new_owner } => {
                format!("{name}({}, to {})", self.id(*did), self.addr(*new_owner))
            }
            Call::AddProvider { did, provider } | Call::RemoveProvider { did, provider } => {
                format!("{name}({}, {})", self.id(*did), self.addr(*provider))
            }
            Call::GrantPermission { did, delegate } | Call::RevokePermission { did, delegate } => {
                format!("{name}({}, {})", self.id(*did), self.addr(*delegate))
            }
            Call::RecordUse { did, .. } | Call::ResignProvider { did } => {
                format!("{name}({})", self.id(*did))
            }
            Call::RecordDerivation { did, source, .. } => {
                format!("{name}({} from {})", self.id(*did), self.id(*source))
            }
            Call::ProposeTemplate { template }
            | Call::ApproveTemplate { template }
            | Call::RevokeTemplate { template } => format!("{name}({})", self.addr(*template)),
            Call::GrantRole { role, account }
            | Call::RevokeRole { role, account }
            | Call::RenounceRole { role, account } => {
                format!("{name}({role:?}, {})", self.addr(*account))
            }
            Call::StoreCreate { consumer, did, .. } => {
                format!(
                    "{name}(consumer {}, {})",
                    self.addr(*consumer),
                    self.id(*did)
                )
            }
            Call::StoreFulfil { condition } | Call::StoreAbort { condition } => {
                format!("{name}({})", self.id(*condition))
            }
            Call::CreateAgreement {
                service,
                seed,
                did,
                terms,
                value,
                ..
            } => format!(
                "{service:?} {name}(seed {}, {}, {} [{}], timeout {}){}",
                self.id(*seed),
                self.id(*did),
                self.token(terms.token),
                terms
                    .receivers
                    .iter()
                    .zip(&terms.amounts)
                    .map(|(r, a)| format!("{}: {}", self.addr(*r), amount(*a)))
                    .collect::<Vec<_>>()
                    .join(", "),
                terms.service_timeout,
                with_value(*value)
            ),
            Call::Passthrough { seed, did, specs } => format!(
                "{name}(seed {}, {}, {} condition(s): {})",
                self.id(*seed),
                self.id(*did),
                specs.len(),
                specs
                    .iter()
                    .map(|s| format!(
                        "{} lock {} out {}",
                        match &s.generic {
                            Generic::Sign { signer, .. } =>
                                format!("sign by {}", self.addr(*signer)),
                            Generic::HashLock { .. } => "hash lock".to_owned(),
                            Generic::Threshold { inputs, threshold } =>
                                format!("{threshold} of {}", self.ids(inputs)),
                            Generic::Raw { contract, .. } =>
                                format!("raw on {}", self.addr(*contract)),
                        },
                        s.time_lock,
                        s.time_out
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Call::SetNetworkFee { receiver, bps } => {
                format!("{name}({}, {bps} bps)", self.addr(*receiver))
            }
            Call::Lock {
                agreement,
                escrow,
                payment,
                value,
                ..
            } => format!(
                "{name}({}, escrow {}, {}){}",
                self.id(*agreement),
                self.addr(*escrow),
                self.payment(payment),
                with_value(*value)
            ),
            Call::LockFor {
                agreement,
                payer,
                payment,
                value,
                ..
            } => format!(
                "{name}({}, payer {}, {}){}",
                self.id(*agreement),
                self.addr(*payer),
                self.payment(payment),
                with_value(*value)
            ),
            Call::Fulfil {
                service,
                agreement,
                did,
                consumer,
                lock,
                ..
            } => format!(
                "{service:?} {name}({}, {}, consumer {}, lock {})",
                self.id(*agreement),
                self.id(*did),
                self.addr(*consumer),
                self.id(*lock)
            ),
            Call::FulfilAndRelease {
                service,
                agreement,
                did,
                consumer,
                lock,
                payment,
                ..
            } => format!(
                "{service:?} {name}({}, {}, consumer {}, lock {}, {})",
                self.id(*agreement),
                self.id(*did),
                self.addr(*consumer),
                self.id(*lock),
                self.payment(payment)
            ),
            Call::AbortTimedOut {
                contract,
                condition,
            } => format!("{}.{name}({})", self.addr(*contract), self.id(*condition)),
            Call::Release {
                agreement,
                payer,
                payment,
                release_conditions,
                ..
            }
            | Call::Refund {
                agreement,
                payer,
                payment,
                release_conditions,
                ..
            } => format!(
                "{name}({}, payer {}, {}, after {})",
                self.id(*agreement),
                self.addr(*payer),
                self.payment(payment),
                self.ids(release_conditions)
            ),
            Call::Withdraw { token, to } | Call::WithdrawFees { token, to } => {
                format!("{name}({}, to {})", self.token(*token), self.addr(*to))
            }
            Call::SendEth { to, value } => format!("{name}(to {}, {} wei)", self.addr(*to), value),
            Call::SignFulfil {
                agreement,
                signer,
                key,
                signed_agreement,
                signed_message,
                message,
            } => format!(
                "{name}({}, signer {}, signed by {}{})",
                self.id(*agreement),
                self.addr(*signer),
                key.map_or_else(|| "nobody".to_owned(), |k| self.addr_actor(k)),
                if signed_agreement != agreement || signed_message != message {
                    " over other data"
                } else {
                    ""
                }
            ),
            Call::HashLockFulfil {
                agreement,
                preimage,
            } => format!("{name}({}, preimage {preimage})", self.id(*agreement)),
            Call::ThresholdFulfil {
                agreement,
                inputs,
                threshold,
            } => format!(
                "{name}({}, {threshold} of {})",
                self.id(*agreement),
                self.ids(inputs)
            ),
            Call::Mint {
                token,
                to,
                amount: a,
            } => format!(
                "{}.{name}({}, {})",
                self.token(*token),
                self.addr(*to),
                amount(*a)
            ),
            Call::Approve {
                token,
                spender,
                amount: a,
            } => format!(
                "{}.{name}({}, {})",
                self.token(*token),
                self.addr(*spender),
                amount(*a)
            ),
            Call::Transfer {
                token,
                to,
                amount: a,
            } => format!(
                "{}.{name}({}, {})",
                self.token(*token),
                self.addr(*to),
                amount(*a)
            ),
            Call::SetBlocked { account, blocked } => {
                format!("BlocklistToken.{name}({}, {blocked})", self.addr(*account))
            }
            Call::ArmToken { inner } | Call::ArmAttacker { inner } => match inner {
                Some(inner) => format!("{name}(-> {})", self.call(inner)),
                None => format!("{name}(nothing)"),
            },
            Call::Warp { seconds } => format!("{name}({seconds})"),
            Call::Mine { blocks } => format!("{name}({blocks})"),
        }
    }
}

fn with_value(value: U256) -> String {
    if value.is_zero() {
        String::new()
    } else {
        format!(" with {value} wei")
    }
}

fn amount(a: U256) -> String {
    if a == U256::MAX {
        "MAX".to_owned()
    } else if a > U256::from(u128::MAX) {
        format!("{a:#x}")
    } else {
        a.to_string()
    }
}

fn short(bytes: &[u8]) -> String {
    let hex = alloy::primitives::hex::encode(bytes);
    if hex.len() <= 12 {
        format!("0x{hex}")
    } else {
        format!("0x{}..{}", &hex[..6], &hex[hex.len() - 4..])
    }
}
