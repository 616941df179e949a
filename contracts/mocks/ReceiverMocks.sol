// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title RevertingReceiver
/// @notice Test receiver that rejects ETH; can still withdraw escrow credits to another address.
///         Never deploy to production.
contract RevertingReceiver {
    /// @notice Always reverts.
    receive() external payable {
        revert("no ETH");
    }

    /// @notice Calls `target` with `data` as this contract (e.g. to withdraw a credit elsewhere).
    function execute(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
        return result;
    }
}

/// @title ReentrantReceiver
/// @notice Test receiver that, when paid ETH, calls `target` with `payload` (e.g. tries to release the
///         same escrow again) and records the outcome. Never deploy to production.
contract ReentrantReceiver {
    /// @notice Contract to call when paid.
    address public target;
    /// @notice Calldata of the inner call.
    bytes public payload;
    /// @notice Whether the last inner call succeeded.
    bool public lastCallSucceeded;
    /// @notice How many times ETH was received.
    uint256 public received;

    /// @notice Sets the call made on the next receipt of ETH.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    /// @notice Calls `to` with `data` as this contract (e.g. to withdraw a credit to itself).
    function execute(address to, bytes calldata data) external {
        (bool ok, bytes memory result) = to.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
    }

    /// @notice Records the payment and re-enters `target`.
    receive() external payable {
        received += 1;
        if (target != address(0)) {
            (lastCallSucceeded,) = target.call(payload);
        }
    }
}

/// @title GasBurningReceiver
/// @notice Test receiver that burns all gas it is given when paid ETH. Never deploy to production.
contract GasBurningReceiver {
    /// @notice Loops until out of gas.
    receive() external payable {
        while (true) {}
    }
}
