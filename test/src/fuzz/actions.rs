//! What the fuzzer does: one [`Step`] is one transaction (or a move of the clock), with every
//! argument concrete, so a sequence saved as JSON replays exactly. Signatures (offers, permits,
//! sign conditions) are stored as who signs what and made with the harness's keys when the step
//! is sent.

use std::collections::HashMap;
use std::fmt::Write as _;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::sol_types::{Eip712Domain, SolCall, SolValue};
use insitu_bindings::offers::{self, ACCESS_TEMPLATE_DOMAIN, COMPUTE_TEMPLATE_DOMAIN};
use insitu_bindings::permits::{self, Permit};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, BlocklistToken, ComputeExecutionCondition,
    HashLockCondition, MockERC20, PassthroughTemplate, PaymentCondition, ReentrantReceiver,
    ReentrantToken, RogueTemplate, ServiceTemplate, SignCondition, ThresholdCondition,
    passthrough_template, rogue_template,
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

impl Service {
    /// The service's template.
    pub fn template(self, a: &Addrs) -> Address {
        match self {
            Service::Access => a.suite().access_template,
            Service::Compute => a.suite().compute_template,
        }
    }

    /// The service's condition contract.
    pub fn condition(self, a: &Addrs) -> Address {
        match self {
            Service::Access => a.suite().access,
            Service::Compute => a.suite().compute_execution,
        }
    }

    /// The EIP-712 domain of the service template's offers.
    pub fn domain(self, a: &Addrs) -> Eip712Domain {
        let name = match self {
            Service::Access => ACCESS_TEMPLATE_DOMAIN,
            Service::Compute => COMPUTE_TEMPLATE_DOMAIN,
        };
        offers::domain(name, CHAIN_ID, self.template(a))
    }
}

/// Payment terms as the payment condition takes them.
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

    fn sol(&self) -> PaymentCondition::Payment {
        PaymentCondition::Payment {
            token: self.token,
            receivers: self.receivers.clone(),
            amounts: self.amounts.clone(),
            fee: self.fee,
        }
    }
}

/// A provider's offer (the fields of `Offer` in `contracts/libraries/Offers.sol`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OfferArgs {
    /// Asset.
    pub did: B256,
    /// Metadata checksum the offer was made for.
    pub checksum: B256,
    /// Signer, who may serve the asset.
    pub provider: Address,
    /// Token (zero: ETH).
    pub token: Address,
    /// Receivers.
    pub receivers: Vec<Address>,
    /// Amounts.
    pub amounts: Vec<U256>,
    /// Shortest service time out.
    pub min_timeout: u32,
    /// Longest service time out.
    pub max_timeout: u32,
    /// Expiry timestamp.
    pub expiry: u64,
    /// Offer epoch of the asset when signed.
    pub epoch: u32,
}

impl OfferArgs {
    /// As the bindings' `Offer`.
    pub fn offer(&self) -> offers::Offer {
        offers::Offer {
            did: self.did,
            checksum: self.checksum,
            provider: self.provider,
            token: self.token,
            receivers: self.receivers.clone(),
            amounts: self.amounts.clone(),
            minServiceTimeout: self.min_timeout,
            maxServiceTimeout: self.max_timeout,
            expiry: self.expiry,
            epoch: self.epoch,
        }
    }

    fn payment_offer(&self) -> PaymentCondition::Offer {
        self.offer().into()
    }
}

/// Who signs an offer, in which template's domain, and over what.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OfferSig {
    /// Whose key signs (`None`: 65 bytes of junk).
    pub signer: Option<Actor>,
    /// The template whose domain the signature is made in.
    pub domain: Service,
    /// The offer actually signed, when not the one sent (an altered offer).
    pub signed: Option<Box<OfferArgs>>,
}

impl OfferSig {
    /// The signature bytes for `offer`.
    pub fn bytes(&self, env: &Env, offer: &OfferArgs) -> Bytes {
        let signed = self.signed.as_deref().unwrap_or(offer);
        let hash = offers::signing_hash(&signed.offer(), &self.domain.domain(&env.addrs));
        sign_with(env, self.signer, hash)
    }
}

/// An EIP-2612 permit of the permit token, by `signer` for the payment condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PermitArgs {
    /// Whose key signs (`None`: junk).
    pub signer: Option<Actor>,
    /// Owner named in the signed permit.
    pub owner: Address,
    /// Value signed.
    pub value: U256,
    /// Nonce signed.
    pub nonce: U256,
    /// Deadline (signed and sent).
    pub deadline: U256,
}

impl PermitArgs {
    fn sol(&self, env: &Env, token: Address) -> PaymentCondition::PermitSignature {
        let domain = permits::domain(super::env::PERMIT_TOKEN_NAME.into(), CHAIN_ID, token);
        let permit = Permit {
            owner: self.owner,
            spender: env.suite.payment,
            value: self.value,
            nonce: self.nonce,
            deadline: self.deadline,
        };
        let signature = sign_with(env, self.signer, permits::signing_hash(&permit, &domain));
        let bytes = signature.to_vec();
        PaymentCondition::PermitSignature {
            deadline: self.deadline,
            v: bytes[64],
            r: B256::from_slice(&bytes[..32]),
            s: B256::from_slice(&bytes[32..64]),
        }
    }
}

/// A condition a template asks the store for (passthrough and rogue templates).
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
    /// A payment condition with these terms (rogue template only).
    Payment {
        /// Asset.
        did: B256,
        /// Payer bound in it.
        payer: Address,
        /// The service contract that releases it.
        service: Address,
        /// Terms.
        payment: Payment,
    },
    /// A service condition releasing payment `payment_id` (rogue template only).
    Service {
        /// The service contract holding it.
        contract: Address,
        /// Asset.
        did: B256,
        /// Consumer.
        consumer: Address,
        /// The payment condition it releases.
        payment_id: B256,
    },
}

/// A condition spec of an agreement made by the passthrough or rogue template.
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
    RegisterResult {
        owner: Address,
        activity: B256,
        checksum: B256,
        url: String,
        sources: Vec<B256>,
    },
    UpdateMetadata {
        did: B256,
        checksum: B256,
        url: String,
    },
    /// `transferOwnership`: starts a two-step transfer.
    TransferOwnership {
        did: B256,
        new_owner: Address,
    },
    AcceptOwnership {
        did: B256,
    },
    CancelOwnershipTransfer {
        did: B256,
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
    RevokeOffers {
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
    StoreSettle {
        condition: B256,
        released: bool,
    },
    // ---- Templates ----
    /// The template's `createAgreement` (two-step purchase: pay later with `lock`).
    CreateAgreement {
        service: Service,
        seed: B256,
        offer: OfferArgs,
        sig: OfferSig,
        timeout: u32,
        max_total: U256,
    },
    /// The template's `createAgreementFor`, called by someone else than the payment condition.
    CreateAgreementFor {
        service: Service,
        consumer: Address,
        seed: B256,
        offer: OfferArgs,
        sig: OfferSig,
        timeout: u32,
        fee_bps: u16,
    },
    Passthrough {
        seed: B256,
        did: B256,
        specs: Vec<Spec>,
    },
    // ---- The approved rogue template ----
    /// `RogueTemplate.createFor`: an agreement for anyone with any conditions.
    RogueCreate {
        seed: B256,
        consumer: Address,
        did: B256,
        specs: Vec<Spec>,
    },
    /// `RogueTemplate.script`: what its `createAgreementFor` answers next.
    RogueScript {
        agreement: B256,
        service: Address,
        consumer: Address,
        did: B256,
        specs: Vec<Spec>,
    },
    /// `RogueTemplate.execute`: the rogue template calls `inner` as itself, forwarding `value`.
    RogueExecute {
        inner: Box<Call>,
        value: U256,
    },
    // ---- PaymentCondition ----
    SetNetworkFee {
        receiver: Address,
        bps: u16,
    },
    /// `createAgreementAndPay`.
    Pay {
        template: Address,
        seed: B256,
        offer: OfferArgs,
        sig: OfferSig,
        timeout: u32,
        max_total: U256,
        value: U256,
    },
    /// `createAgreementAndPayWithPermit`.
    PayWithPermit {
        template: Address,
        seed: B256,
        offer: OfferArgs,
        sig: OfferSig,
        timeout: u32,
        max_total: U256,
        permit: PermitArgs,
    },
    Lock {
        agreement: B256,
        did: B256,
        service: Address,
        payment: Payment,
        value: U256,
    },
    Release {
        agreement: B256,
        did: B256,
        payer: Address,
        service: Address,
        payment: Payment,
    },
    Refund {
        agreement: B256,
        did: B256,
        payer: Address,
        service: Address,
        payment: Payment,
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
    // ---- Service conditions ----
    Fulfil {
        service: Service,
        agreement: B256,
        did: B256,
        consumer: Address,
        payment_id: B256,
        result: B256,
    },
    FulfilAndRelease {
        service: Service,
        agreement: B256,
        did: B256,
        consumer: Address,
        result: B256,
        payment: Payment,
    },
    /// `abortTimedOut` on any condition contract.
    AbortTimedOut {
        contract: Address,
        condition: B256,
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
            Call::Pay { value, .. }
            | Call::Lock { value, .. }
            | Call::RogueExecute { value, .. }
            | Call::SendEth { value, .. } => *value,
            _ => U256::ZERO,
        }
    }

    /// Short name of the function, for reports and statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Register { .. } => "register",
            Call::RegisterDerived { .. } => "registerDerived",
            Call::RegisterResult { .. } => "registerResult",
            Call::UpdateMetadata { .. } => "updateMetadata",
            Call::TransferOwnership { .. } => "transferOwnership",
            Call::AcceptOwnership { .. } => "acceptOwnership",
            Call::CancelOwnershipTransfer { .. } => "cancelOwnershipTransfer",
            Call::AddProvider { .. } => "addProvider",
            Call::RemoveProvider { .. } => "removeProvider",
            Call::GrantPermission { .. } => "grantPermission",
            Call::RevokePermission { .. } => "revokePermission",
            Call::ResignProvider { .. } => "resignProvider",
            Call::RevokeOffers { .. } => "revokeOffers",
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
            Call::StoreSettle { .. } => "store.settle",
            Call::CreateAgreement { .. } => "createAgreement",
            Call::CreateAgreementFor { .. } => "createAgreementFor",
            Call::Passthrough { .. } => "passthrough.create",
            Call::RogueCreate { .. } => "rogue.createFor",
            Call::RogueScript { .. } => "rogue.script",
            Call::RogueExecute { .. } => "rogue.execute",
            Call::SetNetworkFee { .. } => "setNetworkFee",
            Call::Pay { .. } => "createAgreementAndPay",
            Call::PayWithPermit { .. } => "createAgreementAndPayWithPermit",
            Call::Lock { .. } => "lock",
            Call::Release { .. } => "release",
            Call::Refund { .. } => "refund",
            Call::Withdraw { .. } => "withdraw",
            Call::WithdrawFees { .. } => "withdrawFees",
            Call::SendEth { .. } => "sendEth",
            Call::Fulfil { .. } => "fulfil",
            Call::FulfilAndRelease { .. } => "fulfilAndRelease",
            Call::AbortTimedOut { .. } => "abortTimedOut",
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
            | Call::RegisterResult { .. }
            | Call::UpdateMetadata { .. }
            | Call::TransferOwnership { .. }
            | Call::AcceptOwnership { .. }
            | Call::CancelOwnershipTransfer { .. }
            | Call::AddProvider { .. }
            | Call::RemoveProvider { .. }
            | Call::GrantPermission { .. }
            | Call::RevokePermission { .. }
            | Call::ResignProvider { .. }
            | Call::RevokeOffers { .. }
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
            | Call::StoreAbort { .. }
            | Call::StoreSettle { .. } => s.agreement_store,
            Call::CreateAgreement { service, .. } | Call::CreateAgreementFor { service, .. } => {
                service.template(env)
            }
            Call::Passthrough { .. } => env.passthrough,
            Call::RogueCreate { .. } | Call::RogueScript { .. } | Call::RogueExecute { .. } => {
                env.rogue
            }
            Call::SetNetworkFee { .. }
            | Call::Pay { .. }
            | Call::PayWithPermit { .. }
            | Call::Lock { .. }
            | Call::Release { .. }
            | Call::Refund { .. }
            | Call::Withdraw { .. }
            | Call::WithdrawFees { .. } => s.payment,
            Call::Fulfil { service, .. } | Call::FulfilAndRelease { service, .. } => {
                service.condition(env)
            }
            Call::AbortTimedOut { contract, .. } => *contract,
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
        let a = &env.addrs;
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
            Call::RegisterResult {
                owner,
                activity,
                checksum,
                url,
                sources,
            } => AssetRegistry::registerResultCall {
                owner,
                activityId: activity,
                checksum,
                url,
                sources,
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
            Call::AcceptOwnership { did } => {
                AssetRegistry::acceptOwnershipCall { did }.abi_encode()
            }
            Call::CancelOwnershipTransfer { did } => {
                AssetRegistry::cancelOwnershipTransferCall { did }.abi_encode()
            }
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
            Call::RevokeOffers { did } => AssetRegistry::revokeOffersCall { did }.abi_encode(),
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
                account,
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
            Call::StoreSettle {
                condition,
                released,
            } => AgreementStore::settleCall {
                conditionId: condition,
                released,
            }
            .abi_encode(),
            Call::CreateAgreement {
                seed,
                offer,
                sig,
                timeout,
                max_total,
                ..
            } => ServiceTemplate::createAgreementCall {
                seed,
                signature: sig.bytes(env, &offer),
                offer: offer.offer(),
                serviceTimeout: timeout,
                maxTotal: max_total,
            }
            .abi_encode(),
            Call::CreateAgreementFor {
                consumer,
                seed,
                offer,
                sig,
                timeout,
                fee_bps,
                ..
            } => ServiceTemplate::createAgreementForCall {
                consumer,
                seed,
                signature: sig.bytes(env, &offer),
                offer: offer.offer(),
                serviceTimeout: timeout,
                feeBps: fee_bps,
            }
            .abi_encode(),
            Call::Passthrough { seed, did, specs } => PassthroughTemplate::createCall {
                seed,
                did,
                conditions: specs
                    .iter()
                    .map(|spec| {
                        let (contract, value_hash) = spec.generic.contract_and_hash(a);
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
            Call::RogueCreate {
                seed,
                consumer,
                did,
                specs,
            } => RogueTemplate::createForCall {
                seed,
                consumer,
                did,
                conditions: rogue_specs(a, &specs),
            }
            .abi_encode(),
            Call::RogueScript {
                agreement,
                service,
                consumer,
                did,
                specs,
            } => RogueTemplate::scriptCall {
                agreementId: agreement,
                service,
                consumer,
                did,
                specs: rogue_specs(a, &specs),
            }
            .abi_encode(),
            Call::RogueExecute { inner, .. } => RogueTemplate::executeCall {
                target: inner.target(a),
                data: inner.calldata(env),
            }
            .abi_encode(),
            Call::SetNetworkFee { receiver, bps } => {
                PaymentCondition::setNetworkFeeCall { receiver, bps }.abi_encode()
            }
            Call::Pay {
                template,
                seed,
                offer,
                sig,
                timeout,
                max_total,
                ..
            } => PaymentCondition::createAgreementAndPayCall {
                template,
                seed,
                signature: sig.bytes(env, &offer),
                offer: offer.payment_offer(),
                serviceTimeout: timeout,
                maxTotal: max_total,
            }
            .abi_encode(),
            Call::PayWithPermit {
                template,
                seed,
                offer,
                sig,
                timeout,
                max_total,
                permit,
            } => PaymentCondition::createAgreementAndPayWithPermitCall {
                template,
                seed,
                signature: sig.bytes(env, &offer),
                permit: permit.sol(env, offer.token),
                offer: offer.payment_offer(),
                serviceTimeout: timeout,
                maxTotal: max_total,
            }
            .abi_encode(),
            Call::Lock {
                agreement,
                did,
                service,
                payment,
                ..
            } => PaymentCondition::lockCall {
                agreementId: agreement,
                did,
                service,
                payment: payment.sol(),
            }
            .abi_encode(),
            Call::Release {
                agreement,
                did,
                payer,
                service,
                payment,
            } => PaymentCondition::releaseCall {
                agreementId: agreement,
                did,
                payer,
                service,
                payment: payment.sol(),
            }
            .abi_encode(),
            Call::Refund {
                agreement,
                did,
                payer,
                service,
                payment,
            } => PaymentCondition::refundCall {
                agreementId: agreement,
                did,
                payer,
                service,
                payment: payment.sol(),
            }
            .abi_encode(),
            Call::Withdraw { token, to } => {
                PaymentCondition::withdrawCall { token, to }.abi_encode()
            }
            Call::WithdrawFees { token, to } => {
                PaymentCondition::withdrawFeesCall { token, to }.abi_encode()
            }
            Call::Fulfil {
                service,
                agreement,
                did,
                consumer,
                payment_id,
                result,
            } => match service {
                Service::Access => AccessCondition::fulfilCall {
                    agreementId: agreement,
                    did,
                    consumer,
                    paymentConditionId: payment_id,
                }
                .abi_encode(),
                Service::Compute => ComputeExecutionCondition::fulfilCall {
                    agreementId: agreement,
                    did,
                    consumer,
                    paymentConditionId: payment_id,
                    result,
                }
                .abi_encode(),
            },
            Call::FulfilAndRelease {
                service,
                agreement,
                did,
                consumer,
                result,
                payment,
            } => match service {
                Service::Access => AccessCondition::fulfilAndReleaseCall {
                    agreementId: agreement,
                    did,
                    consumer,
                    payment: payment.sol().into(),
                }
                .abi_encode(),
                Service::Compute => ComputeExecutionCondition::fulfilAndReleaseCall {
                    agreementId: agreement,
                    did,
                    consumer,
                    result,
                    payment: payment.sol().into(),
                }
                .abi_encode(),
            },
            Call::AbortTimedOut { condition, .. } => AccessCondition::abortTimedOutCall {
                conditionId: condition,
            }
            .abi_encode(),
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
                signature: sign_with(
                    env,
                    key,
                    sign_digest(env.suite.sign, signed_agreement, signed_message),
                ),
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

fn rogue_specs(a: &Addrs, specs: &[Spec]) -> Vec<rogue_template::RogueTemplate::ConditionSpec> {
    specs
        .iter()
        .map(|spec| {
            let (contract, value_hash) = spec.generic.contract_and_hash(a);
            rogue_template::RogueTemplate::ConditionSpec {
                conditionContract: contract,
                valueHash: value_hash,
                timeLock: spec.time_lock,
                timeOut: spec.time_out,
            }
        })
        .collect()
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
            Generic::Payment {
                did,
                payer,
                service,
                payment,
            } => (
                suite.payment,
                super::model::ids::payment_value(*did, *payer, *service, payment),
            ),
            Generic::Service {
                contract,
                did,
                consumer,
                payment_id,
            } => (
                *contract,
                super::model::ids::service_value(*did, *consumer, *payment_id),
            ),
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

/// `key`'s signature of `digest`, or 65 bytes of junk.
fn sign_with(env: &Env, key: Option<Actor>, digest: B256) -> Bytes {
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

    fn offer(&self, offer: &OfferArgs, sig: &OfferSig) -> String {
        let split: Vec<String> = offer
            .receivers
            .iter()
            .zip(&offer.amounts)
            .map(|(r, a)| format!("{}: {}", self.addr(*r), amount(*a)))
            .collect();
        let signer = sig
            .signer
            .map_or_else(|| "nobody".to_owned(), |k| self.addr_actor(k));
        let altered = if sig.signed.is_some() {
            ", altered"
        } else {
            ""
        };
        format!(
            "offer of {} on {} epoch {}: {} [{}] {}..{} s, expires {}, signed by {signer} for {:?}{altered}",
            self.addr(offer.provider),
            self.id(offer.did),
            offer.epoch,
            self.token(offer.token),
            split.join(", "),
            offer.min_timeout,
            offer.max_timeout,
            offer.expiry,
            sig.domain
        )
    }

    fn specs(&self, specs: &[Spec]) -> String {
        let list: Vec<String> = specs
            .iter()
            .map(|s| {
                let what = match &s.generic {
                    Generic::Sign { signer, .. } => format!("sign by {}", self.addr(*signer)),
                    Generic::HashLock { .. } => "hash lock".to_owned(),
                    Generic::Threshold { inputs, threshold } => {
                        format!("{threshold} of {}", self.ids(inputs))
                    }
                    Generic::Raw { contract, .. } => format!("raw on {}", self.addr(*contract)),
                    Generic::Payment {
                        payer,
                        service,
                        payment,
                        ..
                    } => format!(
                        "payment by {} released by {}: {}",
                        self.addr(*payer),
                        self.addr(*service),
                        self.payment(payment)
                    ),
                    Generic::Service {
                        contract,
                        consumer,
                        payment_id,
                        ..
                    } => format!(
                        "service {} for {} after {}",
                        self.addr(*contract),
                        self.addr(*consumer),
                        self.id(*payment_id)
                    ),
                };
                format!("{what} lock {} out {}", s.time_lock, s.time_out)
            })
            .collect();
        format!("{} condition(s): {}", specs.len(), list.join("; "))
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
            Actor::Rogue => "rogue_operator".into(),
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
            Call::RegisterResult {
                owner,
                activity,
                sources,
                ..
            } => format!(
                "{name}(for {}, activity {}, sources {})",
                self.addr(*owner),
                self.id(*activity),
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
            Call::RecordUse { did, .. }
            | Call::ResignProvider { did }
            | Call::RevokeOffers { did }
            | Call::AcceptOwnership { did }
            | Call::CancelOwnershipTransfer { did } => {
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
            Call::StoreFulfil { condition }
            | Call::StoreAbort { condition }
            | Call::StoreSettle { condition, .. } => {
                format!("{name}({})", self.id(*condition))
            }
            Call::CreateAgreement {
                service,
                seed,
                offer,
                sig,
                timeout,
                max_total,
            } => format!(
                "{service:?} {name}(seed {}, {}, timeout {timeout}, max {})",
                self.id(*seed),
                self.offer(offer, sig),
                amount(*max_total)
            ),
            Call::CreateAgreementFor {
                service,
                consumer,
                offer,
                sig,
                fee_bps,
                ..
            } => format!(
                "{service:?} {name}(consumer {}, {}, {fee_bps} bps)",
                self.addr(*consumer),
                self.offer(offer, sig)
            ),
            Call::Pay {
                template,
                seed,
                offer,
                sig,
                timeout,
                max_total,
                value,
            } => format!(
                "{name}({}, seed {}, {}, timeout {timeout}, max {}){}",
                self.addr(*template),
                self.id(*seed),
                self.offer(offer, sig),
                amount(*max_total),
                with_value(*value)
            ),
            Call::PayWithPermit {
                template,
                seed,
                offer,
                sig,
                max_total,
                permit,
                ..
            } => format!(
                "{name}({}, seed {}, {}, max {}, permit of {} by {} nonce {} deadline {})",
                self.addr(*template),
                self.id(*seed),
                self.offer(offer, sig),
                amount(*max_total),
                amount(permit.value),
                permit
                    .signer
                    .map_or_else(|| "nobody".to_owned(), |k| self.addr_actor(k)),
                permit.nonce,
                permit.deadline
            ),
            Call::Passthrough { seed, did, specs } => format!(
                "{name}(seed {}, {}, {})",
                self.id(*seed),
                self.id(*did),
                self.specs(specs)
            ),
            Call::RogueCreate {
                seed,
                consumer,
                did,
                specs,
            } => format!(
                "{name}(seed {}, consumer {}, {}, {})",
                self.id(*seed),
                self.addr(*consumer),
                self.id(*did),
                self.specs(specs)
            ),
            Call::RogueScript {
                agreement,
                service,
                consumer,
                did,
                specs,
            } => format!(
                "{name}(answer {} / {}, then create for {} on {}: {})",
                self.id(*agreement),
                self.addr(*service),
                self.addr(*consumer),
                self.id(*did),
                self.specs(specs)
            ),
            Call::RogueExecute { inner, value } => {
                format!("{name}(-> {}){}", self.call(inner), with_value(*value))
            }
            Call::SetNetworkFee { receiver, bps } => {
                format!("{name}({}, {bps} bps)", self.addr(*receiver))
            }
            Call::Lock {
                agreement,
                did,
                service,
                payment,
                value,
            } => format!(
                "{name}({}, {}, service {}, {}){}",
                self.id(*agreement),
                self.id(*did),
                self.addr(*service),
                self.payment(payment),
                with_value(*value)
            ),
            Call::Fulfil {
                service,
                agreement,
                did,
                consumer,
                payment_id,
                ..
            } => format!(
                "{service:?} {name}({}, {}, consumer {}, payment {})",
                self.id(*agreement),
                self.id(*did),
                self.addr(*consumer),
                self.id(*payment_id)
            ),
            Call::FulfilAndRelease {
                service,
                agreement,
                did,
                consumer,
                payment,
                ..
            } => format!(
                "{service:?} {name}({}, {}, consumer {}, {})",
                self.id(*agreement),
                self.id(*did),
                self.addr(*consumer),
                self.payment(payment)
            ),
            Call::AbortTimedOut {
                contract,
                condition,
            } => format!("{}.{name}({})", self.addr(*contract), self.id(*condition)),
            Call::Release {
                agreement,
                payer,
                service,
                payment,
                ..
            }
            | Call::Refund {
                agreement,
                payer,
                service,
                payment,
                ..
            } => format!(
                "{name}({}, payer {}, service {}, {})",
                self.id(*agreement),
                self.addr(*payer),
                self.addr(*service),
                self.payment(payment)
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
