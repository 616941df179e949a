// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title GovernanceTimelock
/// @notice The governor of an insitu deployment: an OpenZeppelin `TimelockController`. Every template
///         approval or revocation and every network fee change is scheduled here first and can be
///         executed only after `getMinDelay()` seconds, so users see it coming and can leave before it
///         applies. Proposers (e.g. a multisig) schedule and cancel; executors carry out what is due.
contract GovernanceTimelock is TimelockController {
    /// @notice No proposer, or a zero one: nobody could ever schedule, and the suite it governs would
    ///         stay ungoverned for good (the timelock administers itself).
    error InvalidProposer(address proposer);
    /// @notice No executor: nothing scheduled could ever be carried out.
    error NoExecutor();

    /// @param minDelay Seconds between scheduling and executing an operation (0 only on dev chains).
    /// @param proposers Accounts that may schedule (and cancel) operations; at least one, none zero.
    /// @param executors Accounts that may execute due operations (the zero address: anyone); at least
    ///        one.
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {
        if (proposers.length == 0) revert InvalidProposer(address(0));
        for (uint256 i; i < proposers.length; ++i) {
            if (proposers[i] == address(0)) revert InvalidProposer(address(0));
        }
        if (executors.length == 0) revert NoExecutor();
    }
}
