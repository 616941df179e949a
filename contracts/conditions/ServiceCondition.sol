// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {Condition} from "./Condition.sol";

/// @title ServiceCondition
/// @notice Base of the conditions a provider fulfils by serving a paid consumer (access, compute).
/// @dev Value hash: `keccak256(abi.encode(did, consumer, lockConditionId))`. Binding the lock
///      condition's id makes the payment an on-chain precondition: the service can only be fulfilled
///      once that very lock (same agreement, same terms) is Fulfilled. Only an account that may serve
///      the asset (owner, provider or delegate in the registry) may fulfil.
abstract contract ServiceCondition is Condition {
    /// @notice The asset registry that says who may serve an asset.
    IAssetRegistry public immutable assetRegistry;

    /// @notice The caller may not serve the asset.
    error NotAssetServer(bytes32 did, address caller);
    /// @notice The registry address is zero.
    error InvalidRegistry();

    /// @param store The agreement store.
    /// @param registry The asset registry.
    constructor(IAgreementStore store, IAssetRegistry registry) Condition(store) {
        if (address(registry) == address(0)) revert InvalidRegistry();
        assetRegistry = registry;
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
}
