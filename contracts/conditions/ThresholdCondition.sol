// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionState} from "../interfaces/IAgreementStore.sol";
import {Condition} from "./Condition.sol";

/// @title ThresholdCondition
/// @notice Fulfilled when at least `threshold` of its input conditions are Fulfilled (k of n).
/// @dev Value hash: `keccak256(abi.encode(inputs, threshold))`. Anyone may fulfil once the threshold is
///      reached. With `threshold == inputs.length` it is an AND, with 1 an OR. Inputs must be in
///      strictly ascending order, so no input can be counted twice.
contract ThresholdCondition is Condition {
    /// @notice The threshold condition was fulfilled; `fulfilled` is the number of inputs counted as
    ///         Fulfilled, which equals the threshold (counting stops once it is reached).
    event ThresholdReached(bytes32 indexed agreementId, bytes32 indexed conditionId, uint256 fulfilled);

    /// @notice The threshold is zero or above the number of inputs.
    error InvalidThreshold(uint256 threshold, uint256 inputs);
    /// @notice The inputs are not in strictly ascending order (a duplicate, or unsorted) at `index`.
    error InputsNotAscending(uint256 index);
    /// @notice Fewer than `threshold` inputs are Fulfilled.
    error ThresholdNotReached(uint256 fulfilled, uint256 threshold);

    /// @param store The agreement store.
    constructor(IAgreementStore store) Condition(store) {}

    /// @notice Value hash of a threshold condition.
    /// @param inputs The input conditions.
    /// @param threshold How many inputs must be Fulfilled.
    function hashValues(bytes32[] calldata inputs, uint256 threshold) public pure returns (bytes32) {
        return keccak256(abi.encode(inputs, threshold));
    }

    /// @notice Fulfils the condition once `threshold` of `inputs` are Fulfilled.
    /// @param agreementId The agreement.
    /// @param inputs The input conditions, as agreed.
    /// @param threshold The threshold, as agreed.
    /// @return conditionId The fulfilled condition.
    function fulfil(bytes32 agreementId, bytes32[] calldata inputs, uint256 threshold)
        external
        returns (bytes32 conditionId)
    {
        uint256 count = inputs.length;
        if (threshold == 0 || threshold > count) revert InvalidThreshold(threshold, count);
        for (uint256 i = 1; i < count; ++i) {
            if (inputs[i] <= inputs[i - 1]) revert InputsNotAscending(i);
        }
        uint256 fulfilled = 0;
        for (uint256 i; i < count && fulfilled < threshold; ++i) {
            if (agreementStore.conditionState(inputs[i]) == ConditionState.Fulfilled) ++fulfilled;
        }
        if (fulfilled < threshold) revert ThresholdNotReached(fulfilled, threshold);
        conditionId = conditionIdOf(agreementId, hashValues(inputs, threshold));
        agreementStore.fulfil(conditionId);
        emit ThresholdReached(agreementId, conditionId, fulfilled);
    }
}
