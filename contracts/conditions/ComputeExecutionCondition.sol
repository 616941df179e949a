// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionState} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {Payment} from "../libraries/PaymentTerms.sol";
import {PaymentCondition} from "./PaymentCondition.sol";
import {ServiceCondition} from "./ServiceCondition.sol";

/// @title ComputeExecutionCondition
/// @notice Fulfilled by the asset's provider once the consumer's algorithm has run where the data lives
///         and the result is available to the consumer. The data itself never leaves the provider.
contract ComputeExecutionCondition is ServiceCondition {
    /// @notice `provider` ran the compute job of `agreementId` on `did` for `consumer`; the result is
    ///         the asset (or document) identified by `result` (the condition's id is in the store's
    ///         `ConditionFulfilled` of the same transaction).
    event ComputeExecuted(
        bytes32 indexed agreementId,
        bytes32 indexed did,
        address consumer,
        address provider,
        bytes32 result
    );

    /// @param store The agreement store.
    /// @param registry The asset registry.
    /// @param payment The payment condition.
    constructor(IAgreementStore store, IAssetRegistry registry, PaymentCondition payment)
        ServiceCondition(store, registry, payment)
    {}

    /// @notice Records that the compute job ran and its result is available. Only an account that may
    ///         serve the asset; only after the payment is in escrow; only inside the time window.
    /// @param agreementId The agreement.
    /// @param did The data asset computed on.
    /// @param consumer The consumer whose algorithm ran.
    /// @param paymentConditionId The agreement's payment condition.
    /// @param result Identifier of the result (e.g. the did of the registered result asset).
    /// @return conditionId The fulfilled compute condition.
    function fulfil(bytes32 agreementId, bytes32 did, address consumer, bytes32 paymentConditionId, bytes32 result)
        external
        returns (bytes32 conditionId)
    {
        conditionId = _fulfilService(agreementId, did, consumer, paymentConditionId);
        emit ComputeExecuted(agreementId, did, consumer, msg.sender, result);
    }

    /// @notice Records the compute job as {fulfil} does, then releases the agreement's payment to its
    ///         receivers, in one transaction. Same caller rules as {fulfil}; reverts whole unless the
    ///         payment with these terms is in escrow.
    /// @param agreementId The agreement.
    /// @param did The data asset computed on.
    /// @param consumer The consumer whose algorithm ran (the payer).
    /// @param result Identifier of the result (e.g. the did of the registered result asset).
    /// @param payment The agreement's payment terms, as published by its template.
    /// @return conditionId The fulfilled compute condition.
    function fulfilAndRelease(
        bytes32 agreementId,
        bytes32 did,
        address consumer,
        bytes32 result,
        Payment calldata payment
    ) external returns (bytes32 conditionId) {
        conditionId = _fulfilServiceForRelease(agreementId, did, consumer, payment);
        emit ComputeExecuted(agreementId, did, consumer, msg.sender, result);
        _release(agreementId, did, consumer, payment);
    }

    /// @notice Whether the compute job of `agreementId` for `consumer` on `did` is recorded as done.
    function isExecuted(bytes32 agreementId, bytes32 did, address consumer, bytes32 paymentConditionId)
        external
        view
        returns (bool)
    {
        bytes32 conditionId = conditionIdOf(agreementId, hashValues(did, consumer, paymentConditionId));
        return agreementStore.conditionState(conditionId) == ConditionState.Fulfilled;
    }
}
