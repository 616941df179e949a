// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice A provider's signed offer to sell one service (the template that verifies it) on one asset.
///         Signed as EIP-712 typed data in the template's domain (name, version, chain id, template
///         address), so it is valid for that service, on that chain, only.
/// @param did The asset.
/// @param checksum The asset's metadata checksum the offer was made for; the offer lapses when the
///        metadata changes.
/// @param provider The signer: an account that may serve the asset (owner, provider or delegate);
///        an EOA (ECDSA) or a contract (ERC-1271).
/// @param token The ERC20 token, or the zero address for native ETH.
/// @param receivers Who is paid on release.
/// @param amounts How much each receiver is paid (the network fee comes on top).
/// @param minServiceTimeout Shortest service time out the consumer may choose, in seconds.
/// @param maxServiceTimeout Longest service time out the consumer may choose, in seconds.
/// @param expiry Timestamp from which the offer can no longer be used.
/// @param epoch The asset's offer epoch when signed; bumping it (`AssetRegistry.revokeOffers`)
///        revokes every outstanding offer on the asset.
struct Offer {
    bytes32 did;
    bytes32 checksum;
    address provider;
    address token;
    address[] receivers;
    uint256[] amounts;
    uint32 minServiceTimeout;
    uint32 maxServiceTimeout;
    uint64 expiry;
    uint32 epoch;
}

/// @title Offers
/// @notice EIP-712 struct hashing of {Offer}.
library Offers {
    /// @notice EIP-712 type hash of {Offer}.
    bytes32 internal constant OFFER_TYPEHASH = keccak256(
        "Offer(bytes32 did,bytes32 checksum,address provider,address token,address[] receivers,uint256[] amounts,uint32 minServiceTimeout,uint32 maxServiceTimeout,uint64 expiry,uint32 epoch)"
    );

    /// @notice The EIP-712 struct hash of `offer`.
    function structHash(Offer calldata offer) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                OFFER_TYPEHASH,
                offer.did,
                offer.checksum,
                offer.provider,
                offer.token,
                keccak256(abi.encodePacked(offer.receivers)),
                keccak256(abi.encodePacked(offer.amounts)),
                offer.minServiceTimeout,
                offer.maxServiceTimeout,
                offer.expiry,
                offer.epoch
            )
        );
    }
}
