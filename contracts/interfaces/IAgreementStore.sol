// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ITemplateRegistry} from "./ITemplateRegistry.sol";

/// @notice Life cycle of a condition. Each condition moves Uninitialized -> Unfulfilled once, then
///         Unfulfilled -> Fulfilled or Unfulfilled -> Aborted once. A payment condition, whose
///         Fulfilled state means "paid into escrow", then settles once more: Fulfilled -> Released or
///         Fulfilled -> Refunded. Nothing ever moves back.
enum ConditionState {
    Uninitialized,
    Unfulfilled,
    Fulfilled,
    Aborted,
    Released,
    Refunded
}

/// @notice A condition as kept by the store: one storage slot.
/// @param conditionContract The only contract allowed to change the condition's state.
/// @param state Current state.
/// @param timeLock Absolute timestamp before which the condition cannot be fulfilled (0: none).
/// @param timeOut Absolute timestamp from which the condition can no longer be fulfilled and may be
///        aborted by anyone (0: never times out).
struct Condition {
    address conditionContract;
    ConditionState state;
    uint40 timeLock;
    uint40 timeOut;
}

/// @notice What a template asks the store to create for one condition.
/// @param conditionContract The condition contract that will own the condition.
/// @param valueHash Hash of every parameter of the condition (see each condition's `hashValues`).
/// @param timeLock Seconds after creation before which the condition cannot be fulfilled (0: none).
/// @param timeOut Seconds after creation from which the condition times out (0: never).
struct ConditionSpec {
    address conditionContract;
    bytes32 valueHash;
    uint32 timeLock;
    uint32 timeOut;
}

/// @title IAgreementStore
/// @notice Agreements, their conditions, and the registry of approved templates.
interface IAgreementStore is ITemplateRegistry {
    /// @notice An agreement was created by an approved template, with conditions `conditionIds` (in the
    ///         template's order, each Unfulfilled; their time windows are readable with `getCondition`).
    event AgreementCreated(
        bytes32 indexed agreementId,
        bytes32 indexed did,
        address indexed consumer,
        address template,
        bytes32[] conditionIds
    );
    /// @notice A condition moved to Fulfilled.
    event ConditionFulfilled(bytes32 indexed conditionId, address indexed conditionContract);
    /// @notice A condition moved to Aborted.
    event ConditionAborted(bytes32 indexed conditionId, address indexed conditionContract);

    /// @notice The caller is not an approved template.
    error TemplateNotApproved(address caller);
    /// @notice The consumer is the zero address.
    error InvalidConsumer();
    /// @notice An agreement must have at least one condition.
    error NoConditions();
    /// @notice A condition with this id already exists.
    error ConditionAlreadyExists(bytes32 conditionId);
    /// @notice A condition spec names the zero address as condition contract.
    error InvalidConditionContract(address conditionContract);
    /// @notice A condition's time out is not after its time lock.
    error InvalidTimeWindow(uint32 timeLock, uint32 timeOut);
    /// @notice No condition with this id exists.
    error ConditionNotFound(bytes32 conditionId);
    /// @notice Only the condition's own contract may change its state.
    error NotConditionContract(bytes32 conditionId, address caller);
    /// @notice The condition is not in state Unfulfilled.
    error ConditionNotUnfulfilled(bytes32 conditionId, ConditionState state);
    /// @notice The condition is not in state Fulfilled, so it cannot be settled.
    error ConditionNotFulfilled(bytes32 conditionId, ConditionState state);
    /// @notice The condition's time lock has not passed yet.
    error ConditionTimeLocked(bytes32 conditionId, uint40 timeLock);
    /// @notice The condition has timed out.
    error ConditionTimedOut(bytes32 conditionId, uint40 timeOut);
    /// @notice The condition has not timed out (or never times out).
    error ConditionNotTimedOut(bytes32 conditionId);

    /// @notice Creates an agreement of `consumer` and its conditions. Only approved templates may
    ///         call. The id binds the seed, the consumer and the first condition (see {AgreementIds}),
    ///         so an id is never created twice.
    /// @param seed Consumer-chosen seed.
    /// @param consumer The account the agreement is for (the template's caller, for shipped templates).
    /// @param did The asset the agreement is about (published in the event, bound in condition ids).
    /// @param conditions The conditions to create, in the template's order.
    /// @return agreementId The new agreement's id.
    function createAgreement(bytes32 seed, address consumer, bytes32 did, ConditionSpec[] calldata conditions)
        external
        returns (bytes32 agreementId);

    /// @notice Moves a condition to Fulfilled. Only the condition's own contract may call, inside the
    ///         condition's time window.
    /// @param conditionId An Unfulfilled condition of the caller.
    function fulfil(bytes32 conditionId) external;

    /// @notice Moves a condition to Aborted. Only the condition's own contract may call.
    /// @param conditionId An Unfulfilled condition of the caller.
    function abort(bytes32 conditionId) external;

    /// @notice Settles a Fulfilled condition for good: to Released, or to Refunded. Only the
    ///         condition's own contract may call (the payment condition, once per payment).
    /// @param conditionId A Fulfilled condition of the caller.
    /// @param released True for Released, false for Refunded.
    function settle(bytes32 conditionId, bool released) external;

    /// @notice The state of a condition (Uninitialized when it does not exist).
    function conditionState(bytes32 conditionId) external view returns (ConditionState);

    /// @notice The whole record of a condition.
    function getCondition(bytes32 conditionId) external view returns (Condition memory);

    /// @notice The id of the agreement `consumer` would create with `seed` and first condition
    ///         `firstCondition` (see {AgreementIds}).
    function agreementIdOf(bytes32 seed, address consumer, ConditionSpec calldata firstCondition)
        external
        pure
        returns (bytes32);

    /// @notice Whether the condition exists, is Unfulfilled, and its time out has passed.
    function isTimedOut(bytes32 conditionId) external view returns (bool);
}
