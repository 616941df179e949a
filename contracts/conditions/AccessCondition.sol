// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionState} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {EscrowPaymentCondition} from "./EscrowPaymentCondition.sol";
import {ServiceCondition} from "./ServiceCondition.sol";

/// @title AccessCondition
/// @notice Fulfilled by the asset's provider when it grants the paying consumer access to the asset.
contract AccessCondition is ServiceCondition {
    /// @notice `provider` granted `consumer` access to `did` under `agreementId`.
    event AccessGranted(
        bytes32 indexed agreementId,
        bytes32 indexed conditionId,
        bytes32 indexed did,
        address consumer,
        address provider
    );

    /// @param store The agreement store.
    /// @param registry The asset registry.
    /// @param escrow_ The escrow payment condition.
    constructor(IAgreementStore store, IAssetRegistry registry, EscrowPaymentCondition escrow_)
        ServiceCondition(store, registry, escrow_)
    {}

    /// @notice Grants `consumer` access to `did`. Only an account that may serve the asset; only after
    ///         the agreement's lock payment is Fulfilled; only inside the condition's time window.
    /// @param agreementId The agreement.
    /// @param did The asset.
    /// @param consumer The consumer granted access.
    /// @param lockConditionId The agreement's lock payment condition.
    /// @return conditionId The fulfilled access condition.
    function fulfil(bytes32 agreementId, bytes32 did, address consumer, bytes32 lockConditionId)
        external
        returns (bytes32 conditionId)
    {
        conditionId = _fulfilService(agreementId, did, consumer, lockConditionId);
        emit AccessGranted(agreementId, conditionId, did, consumer, msg.sender);
    }

    /// @notice Grants access as {fulfil} does, then releases the escrow of the agreement to its
    ///         receivers, in one transaction. Same caller rules as {fulfil}.
    /// @param agreementId The agreement.
    /// @param did The asset.
    /// @param consumer The consumer granted access (the payer).
    /// @param lockConditionId The agreement's lock payment condition.
    /// @param payment The agreement's payment terms, as published by its template.
    /// @return conditionId The fulfilled access condition.
    function fulfilAndRelease(
        bytes32 agreementId,
        bytes32 did,
        address consumer,
        bytes32 lockConditionId,
        Payment calldata payment
    ) external returns (bytes32 conditionId) {
        conditionId = _fulfilService(agreementId, did, consumer, lockConditionId);
        emit AccessGranted(agreementId, conditionId, did, consumer, msg.sender);
        _release(agreementId, did, consumer, conditionId, payment);
    }

    /// @notice Whether `consumer` holds access to `did` under `agreementId`.
    function hasAccess(bytes32 agreementId, bytes32 did, address consumer, bytes32 lockConditionId)
        external
        view
        returns (bool)
    {
        bytes32 conditionId = conditionIdOf(agreementId, hashValues(did, consumer, lockConditionId));
        return agreementStore.conditionState(conditionId) == ConditionState.Fulfilled;
    }
}
