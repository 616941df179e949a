// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {Condition} from "./Condition.sol";

/// @title HashLockCondition
/// @notice Fulfilled by revealing a preimage of an agreed hash (e.g. a decryption key whose hash the
///         parties agreed on). Anyone who knows the preimage may fulfil: revealing it is the point.
/// @dev Value hash: `keccak256(abi.encode(keccak256(preimage)))`. Front-running a reveal cannot change
///      the outcome: the condition reaches the same Fulfilled state whoever submits it.
///      One secret per agreement: a reveal publishes the preimage (in `PreimageRevealed` and in the
///      calldata), so any other agreement locked on the same hash can then be fulfilled by anyone.
///      Binding the agreement id into the hash would not change that, since the revealed secret
///      opens every binding alike. Templates and parties derive a fresh secret for each agreement,
///      e.g. `keccak256(abi.encode(masterSecret, agreementId))`, or from the agreement's seed when the
///      hash lock is the agreement's first condition (whose value hash the agreement id binds).
contract HashLockCondition is Condition {
    /// @notice The preimage of the condition's hash lock was revealed.
    event PreimageRevealed(bytes32 indexed agreementId, bytes32 indexed conditionId, bytes preimage);

    /// @param store The agreement store.
    constructor(IAgreementStore store) Condition(store) {}

    /// @notice Value hash of a hash lock condition on `lockHash` (the keccak256 of the secret).
    function hashValues(bytes32 lockHash) public pure returns (bytes32) {
        return keccak256(abi.encode(lockHash));
    }

    /// @notice Reveals `preimage` and fulfils the matching condition of `agreementId`.
    /// @param agreementId The agreement.
    /// @param preimage The secret whose keccak256 is the agreed lock hash.
    /// @return conditionId The fulfilled condition.
    function fulfil(bytes32 agreementId, bytes calldata preimage) external returns (bytes32 conditionId) {
        conditionId = conditionIdOf(agreementId, hashValues(keccak256(preimage)));
        agreementStore.fulfil(conditionId);
        emit PreimageRevealed(agreementId, conditionId, preimage);
    }
}
