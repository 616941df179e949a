// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title AgreementIds
/// @notice The one place where insitu derives agreement and condition identifiers.
/// @dev Every contract and every off-chain component must derive ids exactly like this:
///      - `agreementId = keccak256(abi.encode(seed, consumer, firstConditionContract, firstValueHash))`:
///        the consumer picks the seed, and the agreement's first condition (for the service
///        templates, its payment, whose value hash binds the asset, the consumer and every term) is
///        bound in. Creating the same agreement id again means creating that same first condition
///        again, which the store refuses, so an id never repeats and no record of agreements is kept.
///        Two creators can never collide, and the first condition's value hash must not depend on
///        the agreement id;
///      - `conditionId = keccak256(abi.encode(agreementId, conditionContract, valueHash))`: the value
///        hash binds every parameter of the condition (actors included), so nobody can fulfil a
///        condition with other parameters than the ones agreed at creation.
library AgreementIds {
    /// @notice Derives the id of the agreement `consumer` creates with `seed` whose first condition is
    ///         held by `firstConditionContract` with value hash `firstValueHash`.
    function agreementId(bytes32 seed, address consumer, address firstConditionContract, bytes32 firstValueHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(seed, consumer, firstConditionContract, firstValueHash));
    }

    /// @notice Derives the id of a condition of `agreementId_` handled by `conditionContract`.
    function conditionId(bytes32 agreementId_, address conditionContract, bytes32 valueHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(agreementId_, conditionContract, valueHash));
    }
}
