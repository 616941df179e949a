//! Provider offers: the EIP-712 domain a template verifies them in, and their signing hash.
//!
//! A provider signs an [`Offer`] for one service template on one chain; the consumer's purchase
//! carries it to the template, which checks the signature (ECDSA or ERC-1271) against the account
//! named in the offer. These helpers are what the tests, the CLI and the keeper use to sign and check
//! offers off chain; `ServiceTemplate.offerDigest` gives the same hash on chain.

use alloy::primitives::{Address, B256};
use alloy::sol_types::{Eip712Domain, SolStruct};

pub use crate::ServiceTemplate::Offer;

/// EIP-712 domain name of the access template's offers.
pub const ACCESS_TEMPLATE_DOMAIN: &str = "insitu.AccessTemplate";
/// EIP-712 domain name of the compute template's offers.
pub const COMPUTE_TEMPLATE_DOMAIN: &str = "insitu.ComputeTemplate";
/// EIP-712 domain version of both templates.
pub const TEMPLATE_DOMAIN_VERSION: &str = "1";

/// The EIP-712 domain of offers verified by `template`, whose domain name is `name`
/// ([`ACCESS_TEMPLATE_DOMAIN`] or [`COMPUTE_TEMPLATE_DOMAIN`]), on chain `chain_id`.
pub fn domain(name: &'static str, chain_id: u64, template: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(name.into()),
        Some(TEMPLATE_DOMAIN_VERSION.into()),
        Some(alloy::primitives::U256::from(chain_id)),
        Some(template),
        None,
    )
}

/// The hash a provider signs for `offer` in `domain`.
pub fn signing_hash(offer: &Offer, domain: &Eip712Domain) -> B256 {
    offer.eip712_signing_hash(domain)
}

impl From<Offer> for crate::PaymentCondition::Offer {
    fn from(offer: Offer) -> Self {
        Self {
            did: offer.did,
            checksum: offer.checksum,
            provider: offer.provider,
            token: offer.token,
            receivers: offer.receivers,
            amounts: offer.amounts,
            minServiceTimeout: offer.minServiceTimeout,
            maxServiceTimeout: offer.maxServiceTimeout,
            expiry: offer.expiry,
            epoch: offer.epoch,
        }
    }
}

/// The payment terms as the payment condition takes them; the same terms convert to the service
/// conditions' copies of the type (`fulfilAndRelease`).
pub use crate::PaymentCondition::Payment;

impl From<Payment> for crate::AccessCondition::Payment {
    fn from(payment: Payment) -> Self {
        Self {
            token: payment.token,
            receivers: payment.receivers,
            amounts: payment.amounts,
            fee: payment.fee,
        }
    }
}

impl From<Payment> for crate::ComputeExecutionCondition::Payment {
    fn from(payment: Payment) -> Self {
        Self {
            token: payment.token,
            receivers: payment.receivers,
            amounts: payment.amounts,
            fee: payment.fee,
        }
    }
}
