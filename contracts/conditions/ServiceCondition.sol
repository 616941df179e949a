// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";
import {Payment, PaymentTerms} from "../libraries/PaymentTerms.sol";
import {Condition} from "./Condition.sol";
import {PaymentCondition} from "./PaymentCondition.sol";

/// @title ServiceCondition
/// @notice Base of the conditions a provider fulfils by serving a paid consumer (access, compute).
/// @dev Value hash: `keccak256(abi.encode(did, consumer, paymentConditionId))`. Binding the payment
///      condition's id makes the payment an on-chain precondition: the service can only be fulfilled
///      once that very payment (same agreement, same terms) is in escrow. Only an account that may
///      serve the asset (owner, provider or delegate in the registry) may fulfil.
///
///      A keeper usually fulfils and then releases the escrow at once: `fulfilAndRelease` does both
///      in one transaction. Once the service is Fulfilled the consumer has no refund path left, so
///      releasing right away changes nothing for the consumer and saves the provider a transaction.
abstract contract ServiceCondition is Condition {
    /// @notice The asset registry that says who may serve an asset.
    IAssetRegistry public immutable assetRegistry;
    /// @notice The payment condition whose payments this service releases.
    PaymentCondition public immutable paymentCondition;

    /// @notice The caller may not serve the asset.
    error NotAssetServer(bytes32 did, address caller);
    /// @notice The registry address is zero.
    error InvalidRegistry();
    /// @notice The payment condition address is zero.
    error InvalidPaymentCondition();

    /// @param store The agreement store.
    /// @param registry The asset registry.
    /// @param payment The payment condition.
    constructor(IAgreementStore store, IAssetRegistry registry, PaymentCondition payment) Condition(store) {
        if (address(registry) == address(0)) revert InvalidRegistry();
        if (address(payment) == address(0)) revert InvalidPaymentCondition();
        assetRegistry = registry;
        paymentCondition = payment;
    }

    /// @notice Hash of the parameters of a service condition.
    /// @param did The asset served.
    /// @param consumer The consumer served.
    /// @param paymentConditionId The agreement's payment condition.
    function hashValues(bytes32 did, address consumer, bytes32 paymentConditionId) public pure returns (bytes32) {
        return PaymentTerms.serviceValueHash(did, consumer, paymentConditionId);
    }

    /// @dev Checks the caller, the paid payment and the time window, then fulfils; returns the id.
    function _fulfilService(bytes32 agreementId, bytes32 did, address consumer, bytes32 paymentConditionId)
        internal
        returns (bytes32 conditionId)
    {
        if (!assetRegistry.canServe(did, msg.sender)) revert NotAssetServer(did, msg.sender);
        _requireFulfilled(paymentConditionId);
        conditionId = conditionIdOf(agreementId, hashValues(did, consumer, paymentConditionId));
        agreementStore.fulfil(conditionId);
    }

    /// @dev Fulfils the service of a payment with terms `payment` without reading the payment's state:
    ///      the release that must follow in the same transaction reverts unless that payment is in
    ///      escrow, and the whole transaction with it.
    function _fulfilServiceForRelease(bytes32 agreementId, bytes32 did, address consumer, Payment calldata payment)
        internal
        returns (bytes32 conditionId)
    {
        if (!assetRegistry.canServe(did, msg.sender)) revert NotAssetServer(did, msg.sender);
        bytes32 paymentConditionId = AgreementIds.conditionId(
            agreementId,
            address(paymentCondition),
            PaymentTerms.valueHash(
                did, consumer, address(this), payment.token, payment.receivers, payment.amounts, payment.fee
            )
        );
        conditionId = conditionIdOf(agreementId, hashValues(did, consumer, paymentConditionId));
        agreementStore.fulfil(conditionId);
    }

    /// @dev Releases the escrow of an agreement whose service was just fulfilled.
    function _release(bytes32 agreementId, bytes32 did, address consumer, Payment calldata payment) internal {
        // The payment condition's id is in its `PaymentReleased` event.
        // slither-disable-next-line unused-return
        paymentCondition.release(agreementId, did, consumer, address(this), payment);
    }
}
