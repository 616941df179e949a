// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionSpec} from "../interfaces/IAgreementStore.sol";

/// @title PassthroughTemplate
/// @notice Test template that creates agreements of its caller with whatever conditions the caller
///         lists, so tests can exercise the store and the generic conditions directly. Never approve it
///         in production: it lets anyone create any condition set.
contract PassthroughTemplate {
    /// @notice The agreement store.
    IAgreementStore public immutable agreementStore;

    /// @param store The agreement store.
    constructor(IAgreementStore store) {
        agreementStore = store;
    }

    /// @notice Creates an agreement of the caller with `conditions`.
    function create(bytes32 seed, bytes32 did, ConditionSpec[] calldata conditions)
        external
        returns (bytes32 agreementId)
    {
        return agreementStore.createAgreement(seed, msg.sender, did, conditions);
    }
}
