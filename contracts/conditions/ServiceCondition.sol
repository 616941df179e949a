// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {Condition} from "./Condition.sol";
import {EscrowPaymentCondition} from "./EscrowPaymentCondition.sol";

/// @title ServiceCondition
/// @notice Base of the conditions a provider fulfils by serving a paid consumer (access, compute).
/// @dev Value hash: `keccak256(abi.encode(did, consumer, lockConditionId))`. Binding the lock
///      condition's id makes the payment an on-chain precondition: the service can only be fulfilled
///      once that very lock (same agreement, same terms) is Fulfilled. Only an account that may serve
///      the asset (owner, provider or delegate in the registry) may fulfil.
///
///      A keeper usually fulfils and then releases the escrow at once: `fulfilAndRelease` does both
///      in one transaction. Once the service is Fulfilled the consumer has no refund path left, so
///      releasing right away changes nothing for the consumer and saves the provider a transaction.
abstract contract ServiceCondition is Condition {
    /// @notice The asset registry that says who may serve an asset.
    IAssetRegistry public immutable assetRegistry;
    /// @notice The escrow released by `fulfilAndRelease`.
    EscrowPaymentCondition public immutable escrow;

    /// @notice The payment terms of an agreement, as published in the template's `AgreementTerms`.
    struct Payment {
        address token;
        address[] receivers;
        uint256[] amounts;
        uint256 fee;
    }

    /// @notice The caller may not serve the asset.
    error NotAssetServer(bytes32 did, address caller);
    /// @notice The registry address is zero.
    error InvalidRegistry();

    /// @notice The escrow address is zero.
    error InvalidEscrow();

    /// @param store The agreement store.
    /// @param registry The asset registry.
    /// @param escrow_ The escrow payment condition.
    constructor(IAgreementStore store, IAssetRegistry registry, EscrowPaymentCondition escrow_) Condition(store) {
        if (address(registry) == address(0)) revert InvalidRegistry();
        if (address(escrow_) == address(0)) revert InvalidEscrow();
        assetRegistry = registry;
        escrow = escrow_;
    }

    /// @notice Hash of the parameters of a service condition.
    /// @param did The asset served.
    /// @param consumer The consumer served.
    /// @param lockConditionId The agreement's lock payment condition.
    function hashValues(bytes32 did, address consumer, bytes32 lockConditionId) public pure returns (bytes32) {
        return keccak256(abi.encode(did, consumer, lockConditionId));
    }

    /// @dev Checks the caller, the paid lock and the time window, then fulfils; returns the condition id.
    function _fulfilService(bytes32 agreementId, bytes32 did, address consumer, bytes32 lockConditionId)
        internal
        returns (bytes32 conditionId)
    {
        if (!assetRegistry.canServe(did, msg.sender)) revert NotAssetServer(did, msg.sender);
        _requireFulfilled(lockConditionId);
        conditionId = conditionIdOf(agreementId, hashValues(did, consumer, lockConditionId));
        agreementStore.fulfil(conditionId);
    }

    /// @dev Releases the escrow of an agreement whose only release condition is `conditionId`.
    function _release(
        bytes32 agreementId,
        bytes32 did,
        address consumer,
        bytes32 conditionId,
        Payment calldata payment
    ) internal {
        bytes32[] memory releaseConditions = new bytes32[](1);
        releaseConditions[0] = conditionId;
        // The escrow condition's id is not needed here: the escrow emits it in `PaymentReleased`.
        // slither-disable-next-line unused-return
        escrow.release(
            agreementId,
            did,
            payment.token,
            consumer,
            payment.receivers,
            payment.amounts,
            payment.fee,
            releaseConditions
        );
    }
}
