// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken
/// @notice Test token that, once armed, calls `target` with `payload` from inside its next transfer,
///         and records whether that inner call succeeded. Never deploy to production.
contract ReentrantToken is ERC20 {
    /// @notice Contract to call from inside a transfer.
    address public target;
    /// @notice Calldata of the inner call.
    bytes public payload;
    /// @notice Whether the call fires on the next transfer.
    bool public armed;
    /// @notice Whether the last inner call succeeded.
    bool public lastCallSucceeded;
    /// @notice Revert data of the last inner call.
    bytes public lastCallResult;

    constructor() ERC20("Reentrant", "REE") {}

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms the token: the next transfer calls `target_` with `payload_`.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        armed = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed && from != address(0)) {
            armed = false;
            (lastCallSucceeded, lastCallResult) = target.call(payload);
        }
    }
}
