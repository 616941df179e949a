// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, Condition, ConditionSpec, ConditionState} from "../interfaces/IAgreementStore.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";
import {TemplateRegistry} from "./TemplateRegistry.sol";

/// @title AgreementStore
/// @notice Keeps the states of every agreement's conditions, and the registry of approved templates
///         that alone may create agreements.
/// @dev Rules enforced here, for every condition of every agreement:
///      - ids are derived on-chain (see {AgreementIds}) and can be created once only;
///      - only the condition's own contract changes its state, and each change happens once;
///      - fulfilment happens only inside the time window [timeLock, timeOut);
///      - a Fulfilled condition is settled (Released or Refunded) at most once, by its own contract.
///      Which conditions depend on which is enforced by the condition contracts, which bind the ids of
///      the conditions they depend on into their own value hash. An agreement has no record of its own:
///      its asset, consumer, template and condition ids are published in `AgreementCreated`, and its
///      terms are bound into the condition ids.
contract AgreementStore is IAgreementStore, TemplateRegistry {
    mapping(bytes32 conditionId => Condition) private _conditions;

    /// @param governor Receives the governor role and the admin role (transferable in two steps,
    ///        see {AccessControlDefaultAdminRules}); normally a timelock.
    /// @param adminTransferDelay Seconds a started admin transfer must wait before it can be accepted.
    constructor(address governor, uint48 adminTransferDelay) TemplateRegistry(governor, adminTransferDelay) {}

    /// @inheritdoc IAgreementStore
    function createAgreement(bytes32 seed, address consumer, bytes32 did, ConditionSpec[] calldata conditions)
        external
        returns (bytes32 agreementId)
    {
        if (!isTemplateApproved(msg.sender)) revert TemplateNotApproved(msg.sender);
        if (consumer == address(0)) revert InvalidConsumer();
        uint256 count = conditions.length;
        if (count == 0) revert NoConditions();

        // Unique because the first condition's id, derived from this id, can be created once only.
        agreementId =
            AgreementIds.agreementId(seed, consumer, conditions[0].conditionContract, conditions[0].valueHash);
        uint40 createdAt = uint40(block.timestamp);
        bytes32[] memory conditionIds = new bytes32[](count);
        for (uint256 i; i < count; ++i) {
            conditionIds[i] = _createCondition(agreementId, createdAt, conditions[i]);
        }
        emit AgreementCreated(agreementId, did, consumer, msg.sender, conditionIds);
    }

    /// @inheritdoc IAgreementStore
    function fulfil(bytes32 conditionId) external {
        Condition storage condition = _ownUnfulfilled(conditionId);
        uint40 timeLock = condition.timeLock;
        if (block.timestamp < timeLock) revert ConditionTimeLocked(conditionId, timeLock);
        uint40 timeOut = condition.timeOut;
        if (timeOut != 0 && block.timestamp >= timeOut) revert ConditionTimedOut(conditionId, timeOut);
        condition.state = ConditionState.Fulfilled;
        emit ConditionFulfilled(conditionId, msg.sender);
    }

    /// @inheritdoc IAgreementStore
    function abort(bytes32 conditionId) external {
        Condition storage condition = _ownUnfulfilled(conditionId);
        condition.state = ConditionState.Aborted;
        emit ConditionAborted(conditionId, msg.sender);
    }

    /// @inheritdoc IAgreementStore
    function settle(bytes32 conditionId, bool released) external {
        Condition storage condition = _own(conditionId);
        ConditionState state = condition.state;
        if (state != ConditionState.Fulfilled) revert ConditionNotFulfilled(conditionId, state);
        condition.state = released ? ConditionState.Released : ConditionState.Refunded;
    }

    /// @inheritdoc IAgreementStore
    function conditionState(bytes32 conditionId) external view returns (ConditionState) {
        return _conditions[conditionId].state;
    }

    /// @inheritdoc IAgreementStore
    function getCondition(bytes32 conditionId) external view returns (Condition memory) {
        return _conditions[conditionId];
    }

    /// @inheritdoc IAgreementStore
    function agreementIdOf(bytes32 seed, address consumer, ConditionSpec calldata firstCondition)
        external
        pure
        returns (bytes32)
    {
        return AgreementIds.agreementId(seed, consumer, firstCondition.conditionContract, firstCondition.valueHash);
    }

    /// @inheritdoc IAgreementStore
    function isTimedOut(bytes32 conditionId) external view returns (bool) {
        Condition storage condition = _conditions[conditionId];
        uint40 timeOut = condition.timeOut;
        return condition.state == ConditionState.Unfulfilled && timeOut != 0 && block.timestamp >= timeOut;
    }

    function _createCondition(bytes32 agreementId, uint40 createdAt, ConditionSpec calldata spec)
        private
        returns (bytes32 conditionId)
    {
        address conditionContract = spec.conditionContract;
        if (conditionContract == address(0)) revert InvalidConditionContract(conditionContract);
        if (spec.timeOut != 0 && spec.timeOut <= spec.timeLock) revert InvalidTimeWindow(spec.timeLock, spec.timeOut);
        conditionId = AgreementIds.conditionId(agreementId, conditionContract, spec.valueHash);
        Condition storage condition = _conditions[conditionId];
        // Reached again with the same agreement id and first condition, or with two equal specs.
        if (condition.state != ConditionState.Uninitialized) revert ConditionAlreadyExists(conditionId);
        uint40 timeLock = spec.timeLock == 0 ? 0 : createdAt + spec.timeLock;
        uint40 timeOut = spec.timeOut == 0 ? 0 : createdAt + spec.timeOut;
        condition.conditionContract = conditionContract;
        condition.state = ConditionState.Unfulfilled;
        condition.timeLock = timeLock;
        condition.timeOut = timeOut;
    }

    /// @dev Loads an existing condition that the caller owns.
    function _own(bytes32 conditionId) private view returns (Condition storage condition) {
        condition = _conditions[conditionId];
        if (condition.state == ConditionState.Uninitialized) revert ConditionNotFound(conditionId);
        if (condition.conditionContract != msg.sender) revert NotConditionContract(conditionId, msg.sender);
    }

    /// @dev Loads a condition that the caller owns and that is still Unfulfilled.
    function _ownUnfulfilled(bytes32 conditionId) private view returns (Condition storage condition) {
        condition = _own(conditionId);
        ConditionState state = condition.state;
        if (state != ConditionState.Unfulfilled) revert ConditionNotUnfulfilled(conditionId, state);
    }
}
