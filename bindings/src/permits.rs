//! EIP-2612 permits: what a token holder signs to approve the payment condition for one purchase
//! (`PaymentCondition.createAgreementAndPayWithPermit`) without a standing approval.

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{Eip712Domain, SolStruct};

alloy::sol! {
    /// The EIP-2612 `Permit` struct, as a token holder signs it.
    #[derive(Debug, PartialEq, Eq)]
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

/// The EIP-712 domain of `token`'s permits: its name (`ERC20Permit` uses the token's name), version
/// "1", the chain and the token.
pub fn domain(token_name: String, chain_id: u64, token: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(token_name.into()),
        Some("1".into()),
        Some(U256::from(chain_id)),
        Some(token),
        None,
    )
}

/// The hash a token holder signs for `permit` in `domain`.
pub fn signing_hash(permit: &Permit, domain: &Eip712Domain) -> B256 {
    permit.eip712_signing_hash(domain)
}
