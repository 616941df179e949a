//! Consumers' signed requests to a provider's keeper: EIP-712 typed data any wallet can sign
//! (`eth_signTypedData_v4`), so a request cannot be replayed for another command, agreement,
//! asset, consumer, chain or service, nor after its deadline.
//!
//! Domain: name [`REQUEST_DOMAIN`], version [`REQUEST_DOMAIN_VERSION`], the chain id, and the
//! agreement's service condition (access or compute) as verifying contract. Message:
//! [`ServiceRequest`]. The keeper recovers the signer with [`recover`] and serves only the
//! agreement's consumer, once per nonce, before the deadline.

use alloy::{
    primitives::{Address, B256, Signature, U256},
    sol_types::{Eip712Domain, SolStruct},
};

alloy::sol! {
    /// A consumer's request about one agreement.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct ServiceRequest {
        /// What is asked: `access`, `compute`, `result`, `status`, `logs` or `stop`.
        string command;
        /// The agreement.
        bytes32 agreementId;
        /// The asset the agreement is about.
        bytes32 did;
        /// The agreement's consumer, who signs.
        address consumer;
        /// Any number, used once per consumer (e.g. random, or a counter).
        uint256 nonce;
        /// Unix time after which the request is refused.
        uint64 deadline;
    }
}

alloy::sol! {
    /// A consumer's order to run one compute job on an agreement: the algorithm, runtime and
    /// parameters are signed with it, so nobody between the consumer and the keeper can change
    /// what runs.
    #[derive(Debug, PartialEq, Eq)]
    struct ComputeJob {
        /// The compute agreement.
        bytes32 agreementId;
        /// The asset computed on.
        bytes32 did;
        /// The agreement's consumer, who signs.
        address consumer;
        /// SHA-256 of the algorithm file.
        bytes32 algorithm;
        /// The runtime it runs in (a name the asset's compute policy lists).
        string runtime;
        /// [`params_hash`] of the job's parameters.
        bytes32 params;
        /// Any number, used once per consumer.
        uint256 nonce;
        /// Unix time after which the order is refused.
        uint64 deadline;
    }
}

/// The hash of a job's parameters that [`ComputeJob::params`] carries: keccak256 of their JSON
/// object with keys sorted and no spaces (what `serde_json` writes for a `BTreeMap`).
pub fn params_hash(params: &std::collections::BTreeMap<String, String>) -> B256 {
    alloy::primitives::keccak256(serde_json::to_vec(params).unwrap_or_default())
}

/// The hash a consumer signs for `job` in `domain` (the compute condition's).
pub fn compute_signing_hash(job: &ComputeJob, domain: &Eip712Domain) -> B256 {
    job.eip712_signing_hash(domain)
}

/// The account that signed `job` in `domain` with the 65-byte `signature`, if any.
pub fn recover_compute(
    job: &ComputeJob,
    domain: &Eip712Domain,
    signature: &[u8],
) -> Option<Address> {
    let signature = Signature::try_from(signature).ok()?;
    signature
        .recover_address_from_prehash(&compute_signing_hash(job, domain))
        .ok()
}

/// EIP-712 domain name of keeper requests.
pub const REQUEST_DOMAIN: &str = "insitu.Keeper";
/// EIP-712 domain version of keeper requests.
pub const REQUEST_DOMAIN_VERSION: &str = "1";

/// The commands a request may carry.
pub mod commands {
    /// Download the asset of an access agreement.
    pub const ACCESS: &str = "access";
    /// Start the job of a compute agreement.
    pub const COMPUTE: &str = "compute";
    /// Read a compute job's phase and outcome.
    pub const STATUS: &str = "status";
    /// Read a compute job's logs (when the asset's policy lets the consumer).
    pub const LOGS: &str = "logs";
    /// Stop a compute job.
    pub const STOP: &str = "stop";
    /// Download a compute job's result.
    pub const RESULT: &str = "result";
}

/// The domain of requests about agreements served by `service_condition` on chain `chain_id`.
pub fn domain(chain_id: u64, service_condition: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(REQUEST_DOMAIN.into()),
        Some(REQUEST_DOMAIN_VERSION.into()),
        Some(U256::from(chain_id)),
        Some(service_condition),
        None,
    )
}

/// The hash a consumer signs for `request` in `domain`.
pub fn signing_hash(request: &ServiceRequest, domain: &Eip712Domain) -> B256 {
    request.eip712_signing_hash(domain)
}

/// The account that signed `request` in `domain` with the 65-byte `signature`, if it is a valid
/// signature at all.
pub fn recover(
    request: &ServiceRequest,
    domain: &Eip712Domain,
    signature: &[u8],
) -> Option<Address> {
    let signature = Signature::try_from(signature).ok()?;
    signature
        .recover_address_from_prehash(&signing_hash(request, domain))
        .ok()
}
