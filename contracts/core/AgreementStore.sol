// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {
    IAgreementStore, Agreement, Condition, ConditionSpec, ConditionState
} from "../interfaces/IAgreementStore.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";
import {TemplateRegistry} from "./TemplateRegistry.sol";

/// @title AgreementStore
/// @notice Keeps agreements and the states of their conditions, and the registry of approved
///         templates that alone may create them.
/// @dev Rules enforced here, for every condition of every agreement:
///      - ids are derived on-chain (see {AgreementIds}) and can be created once only;
///      - only the condition's own contract changes its state, and each change happens once;
///      - fulfilment happens only inside the time window [timeLock, timeOut).
///      Which conditions depend on which is enforced by the condition contracts, which bind the ids of
///      the conditions they depend on into their own value hash.
contract AgreementStore is IAgreementStore, TemplateRegistry {
    mapping(bytes32 agreementId => Agreement) private _agreements;
    mapping(bytes32 conditionId => Condition) private _conditions;

    /// @param governor Receives the admin and governor roles.
    constructor(address governor) TemplateRegistry(governor) {}

    /// @inheritdoc IAgreementStore
    function createAgreement(bytes32 seed, address consumer, bytes32 did, ConditionSpec[] calldata conditions)
        external
        returns (bytes32 agreementId)
    {
        if (!isTemplateApproved(msg.sender)) revert TemplateNotApproved(msg.sender);
        if (consumer == address(0)) revert InvalidConsumer();
        uint256 count = conditions.length;
        if (count == 0) revert NoConditions();

        agreementId = AgreementIds.agreementId(seed, consumer);
        Agreement storage agreement = _agreements[agreementId];
        if (agreement.consumer != address(0)) revert AgreementAlreadyExists(agreementId);
        uint40 createdAt = uint40(block.timestamp);
        agreement.consumer = consumer;
        agreement.createdAt = createdAt;

        bytes32[] memory conditionIds = new bytes32[](count);
        for (uint256 i; i < count; ++i) {
            conditionIds[i] = _createCondition(agreementId, createdAt, conditions[i]);
        }
        emit AgreementCreated(agreementId, did, consumer, msg.sender, conditionIds);
    }

    /// @inheritdoc IAgreementStore
    function fulfil(bytes32 conditionId) external {
        Condition storage condition = _ownCondition(conditionId);
        uint40 timeLock = condition.timeLock;
        if (block.timestamp < timeLock) revert ConditionTimeLocked(conditionId, timeLock);
        uint40 timeOut = condition.timeOut;
        if (timeOut != 0 && block.timestamp >= timeOut) revert ConditionTimedOut(conditionId, timeOut);
        condition.state = ConditionState.Fulfilled;
        emit ConditionFulfilled(conditionId, msg.sender);
    }

    /// @inheritdoc IAgreementStore
    function abort(bytes32 conditionId) external {
        Condition storage condition = _ownCondition(conditionId);
        condition.state = ConditionState.Aborted;
        emit ConditionAborted(conditionId, msg.sender);
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
    function getAgreement(bytes32 agreementId) external view returns (Agreement memory) {
        return _agreements[agreementId];
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
        if (condition.state != ConditionState.Uninitialized) revert ConditionAlreadyExists(conditionId);
        uint40 timeLock = spec.timeLock == 0 ? 0 : createdAt + spec.timeLock;
        uint40 timeOut = spec.timeOut == 0 ? 0 : createdAt + spec.timeOut;
        condition.conditionContract = conditionContract;
        condition.state = ConditionState.Unfulfilled;
        condition.timeLock = timeLock;
        condition.timeOut = timeOut;
    }

    /// @dev Loads a condition that the caller owns and that is still Unfulfilled.
    function _ownCondition(bytes32 conditionId) private view returns (Condition storage condition) {
        condition = _conditions[conditionId];
        ConditionState state = condition.state;
        if (state == ConditionState.Uninitialized) revert ConditionNotFound(conditionId);
        if (condition.conditionContract != msg.sender) revert NotConditionContract(conditionId, msg.sender);
        if (state != ConditionState.Unfulfilled) revert ConditionNotUnfulfilled(conditionId, state);
    }
}
