// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title GovernanceTimelock
/// @notice The governor of an insitu deployment: an OpenZeppelin `TimelockController`. Every template
///         approval or revocation and every network fee change is scheduled here first and can be
///         executed only after `getMinDelay()` seconds, so users see it coming and can leave before it
///         applies. Proposers (e.g. a multisig) schedule and cancel; executors carry out what is due.
contract GovernanceTimelock is TimelockController {
    /// @param minDelay Seconds between scheduling and executing an operation (0 only on dev chains).
    /// @param proposers Accounts that may schedule (and cancel) operations.
    /// @param executors Accounts that may execute due operations (the zero address: anyone).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
