// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {ITemplateRegistry} from "../interfaces/ITemplateRegistry.sol";

/// @title TemplateRegistry
/// @notice Governance over which template contracts may create agreements.
/// @dev Anyone may propose a template; only a governor approves or revokes it. A revoked template
///      stays revoked: a fixed template is deployed anew and proposed again. Inherited by the
///      agreement store, so the check on every agreement creation costs no external call.
///      The governor role is meant for a timelock (the deployment plan makes it an OpenZeppelin
///      `TimelockController`), so every approval and fee change is announced before it takes effect.
///      The admin role, which grants and revokes the governor role, moves in two steps with a delay
///      and cannot be granted or renounced by accident ({AccessControlDefaultAdminRules}).
abstract contract TemplateRegistry is ITemplateRegistry, AccessControlDefaultAdminRules {
    /// @notice Role that approves and revokes templates and sets network parameters.
    bytes32 public constant GOVERNOR_ROLE = keccak256("insitu.governor");

    /// @notice Life cycle of a template: None -> Proposed -> Approved -> Revoked (or Proposed -> Revoked).
    enum TemplateState {
        None,
        Proposed,
        Approved,
        Revoked
    }

    mapping(address template => TemplateState) private _templates;

    /// @notice `template` was proposed by `proposer`.
    event TemplateProposed(address indexed template, address indexed proposer);
    /// @notice `template` was approved by governor `by`.
    event TemplateApproved(address indexed template, address indexed by);
    /// @notice `template` was revoked by governor `by`.
    event TemplateRevoked(address indexed template, address indexed by);

    /// @notice The template is not in the state the operation needs.
    error InvalidTemplateState(address template, TemplateState state);
    /// @notice The template address has no code.
    error TemplateNotContract(address template);

    /// @param governor Receives the admin and governor roles; the zero address is refused
    ///        (`AccessControlInvalidDefaultAdmin`).
    /// @param adminTransferDelay Seconds between starting and accepting an admin transfer.
    constructor(address governor, uint48 adminTransferDelay)
        AccessControlDefaultAdminRules(adminTransferDelay, governor)
    {
        _grantRole(GOVERNOR_ROLE, governor);
    }

    /// @notice Proposes a template contract for approval. Anyone may propose.
    /// @param template The template contract; must have code and never have been proposed.
    function proposeTemplate(address template) external {
        if (template.code.length == 0) revert TemplateNotContract(template);
        TemplateState state = _templates[template];
        if (state != TemplateState.None) revert InvalidTemplateState(template, state);
        _templates[template] = TemplateState.Proposed;
        emit TemplateProposed(template, msg.sender);
    }

    /// @notice Approves a proposed template, allowing it to create agreements. Governors only.
    /// @param template A template in state Proposed.
    function approveTemplate(address template) external onlyRole(GOVERNOR_ROLE) {
        TemplateState state = _templates[template];
        if (state != TemplateState.Proposed) revert InvalidTemplateState(template, state);
        _templates[template] = TemplateState.Approved;
        emit TemplateApproved(template, msg.sender);
    }

    /// @notice Revokes a proposed or approved template for good. Governors only. Agreements it
    ///         already created keep working: their conditions do not depend on the template.
    /// @param template A template in state Proposed or Approved.
    function revokeTemplate(address template) external onlyRole(GOVERNOR_ROLE) {
        TemplateState state = _templates[template];
        if (state != TemplateState.Proposed && state != TemplateState.Approved) {
            revert InvalidTemplateState(template, state);
        }
        _templates[template] = TemplateState.Revoked;
        emit TemplateRevoked(template, msg.sender);
    }

    /// @notice The state of `template` in the registry.
    function templateState(address template) external view returns (TemplateState) {
        return _templates[template];
    }

    /// @inheritdoc ITemplateRegistry
    function isTemplateApproved(address template) public view returns (bool) {
        return _templates[template] == TemplateState.Approved;
    }

    /// @inheritdoc ITemplateRegistry
    function isGovernor(address account) external view returns (bool) {
        return hasRole(GOVERNOR_ROLE, account);
    }
}
