// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title AgreementIds
/// @notice The one place where insitu derives agreement and condition identifiers.
/// @dev Every contract and every off-chain component must derive ids exactly like this:
///      - `agreementId = keccak256(abi.encode(seed, creator))`: the creator picks the seed, so two
///        creators can never collide and an id can never be reused by anybody else.
///      - `conditionId = keccak256(abi.encode(agreementId, conditionContract, valueHash))`: the value
///        hash binds every parameter of the condition (actors included), so nobody can fulfil a
///        condition with other parameters than the ones agreed at creation.
library AgreementIds {
    /// @notice Derives the id of an agreement from the creator's seed and the creator's address.
    function agreementId(bytes32 seed, address creator) internal pure returns (bytes32) {
        return keccak256(abi.encode(seed, creator));
    }

    /// @notice Derives the id of a condition of `agreementId` handled by `conditionContract`.
    function conditionId(bytes32 agreementId_, address conditionContract, bytes32 valueHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(agreementId_, conditionContract, valueHash));
    }
}
