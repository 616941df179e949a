// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title ITemplateRegistry
/// @notice Which template contracts may create agreements, and who governs that.
interface ITemplateRegistry {
    /// @notice Whether `template` may create agreements.
    function isTemplateApproved(address template) external view returns (bool);

    /// @notice Whether `account` holds the governor role.
    function isGovernor(address account) external view returns (bool);
}
