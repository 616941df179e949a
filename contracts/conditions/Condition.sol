// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionState} from "../interfaces/IAgreementStore.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";

/// @title Condition
/// @notice Base of every condition contract: the link to the agreement store, id derivation, and the
///         permissionless abort of timed-out conditions.
/// @dev A condition contract is the only account the store lets change its conditions' states. Each
///      concrete condition defines a `hashValues(...)` over its parameters; its conditions' ids are
///      `AgreementIds.conditionId(agreementId, address(this), hashValues(...))`.
abstract contract Condition {
    /// @notice The agreement store holding this condition's states.
    IAgreementStore public immutable agreementStore;

    /// @notice A condition this one depends on is not Fulfilled.
    error DependencyNotFulfilled(bytes32 conditionId, ConditionState state);
    /// @notice The store address is zero.
    error InvalidStore();

    /// @param store The agreement store.
    constructor(IAgreementStore store) {
        if (address(store) == address(0)) revert InvalidStore();
        agreementStore = store;
    }

    /// @notice Aborts a condition of this contract whose time out has passed while it was Unfulfilled.
    ///         Anyone may call: a timed-out condition must always be abortable so refunds can follow.
    /// @param conditionId A condition owned by this contract.
    function abortTimedOut(bytes32 conditionId) external virtual {
        if (!agreementStore.isTimedOut(conditionId)) revert IAgreementStore.ConditionNotTimedOut(conditionId);
        agreementStore.abort(conditionId);
    }

    /// @notice The id of the condition of `agreementId` with value hash `valueHash` in this contract.
    function conditionIdOf(bytes32 agreementId, bytes32 valueHash) public view returns (bytes32) {
        return AgreementIds.conditionId(agreementId, address(this), valueHash);
    }

    /// @dev Reverts unless `conditionId` is Fulfilled.
    function _requireFulfilled(bytes32 conditionId) internal view {
        ConditionState state = agreementStore.conditionState(conditionId);
        if (state != ConditionState.Fulfilled) revert DependencyNotFulfilled(conditionId, state);
    }
}
