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
    #[derive(Debug, PartialEq, Eq)]
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
