// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionState} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {Payment} from "../libraries/PaymentTerms.sol";
import {PaymentCondition} from "./PaymentCondition.sol";
import {ServiceCondition} from "./ServiceCondition.sol";

/// @title AccessCondition
/// @notice Fulfilled by the asset's provider when it grants the paying consumer access to the asset.
contract AccessCondition is ServiceCondition {
    /// @notice `provider` granted `consumer` access to `did` under `agreementId` (the condition's id
    ///         is in the store's `ConditionFulfilled` of the same transaction).
    event AccessGranted(
        bytes32 indexed agreementId,
        bytes32 indexed did,
        address consumer,
        address provider
    );

    /// @param store The agreement store.
    /// @param registry The asset registry.
    /// @param payment The payment condition.
    constructor(IAgreementStore store, IAssetRegistry registry, PaymentCondition payment)
        ServiceCondition(store, registry, payment)
    {}

    /// @notice Grants `consumer` access to `did`. Only an account that may serve the asset; only after
    ///         the agreement's payment is in escrow; only inside the condition's time window.
    /// @param agreementId The agreement.
    /// @param did The asset.
    /// @param consumer The consumer granted access.
    /// @param paymentConditionId The agreement's payment condition.
    /// @return conditionId The fulfilled access condition.
    function fulfil(bytes32 agreementId, bytes32 did, address consumer, bytes32 paymentConditionId)
        external
        returns (bytes32 conditionId)
    {
        conditionId = _fulfilService(agreementId, did, consumer, paymentConditionId);
        emit AccessGranted(agreementId, did, consumer, msg.sender);
    }

    /// @notice Grants access as {fulfil} does, then releases the agreement's payment to its
    ///         receivers, in one transaction. Same caller rules as {fulfil}; reverts whole unless the
    ///         payment with these terms is in escrow.
    /// @param agreementId The agreement.
    /// @param did The asset.
    /// @param consumer The consumer granted access (the payer).
    /// @param payment The agreement's payment terms, as published by its template.
    /// @return conditionId The fulfilled access condition.
    function fulfilAndRelease(bytes32 agreementId, bytes32 did, address consumer, Payment calldata payment)
        external
        returns (bytes32 conditionId)
    {
        conditionId = _fulfilServiceForRelease(agreementId, did, consumer, payment);
        emit AccessGranted(agreementId, did, consumer, msg.sender);
        _release(agreementId, did, consumer, payment);
    }

    /// @notice Whether `consumer` holds access to `did` under `agreementId`.
    function hasAccess(bytes32 agreementId, bytes32 did, address consumer, bytes32 paymentConditionId)
        external
        view
        returns (bool)
    {
        bytes32 conditionId = conditionIdOf(agreementId, hashValues(did, consumer, paymentConditionId));
        return agreementStore.conditionState(conditionId) == ConditionState.Fulfilled;
    }
}
