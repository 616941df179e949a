// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FeeOnTransferToken
/// @notice Test token that burns `feeBps` of every transfer, so the recipient receives less than was
///         sent; anyone may change the fee, like a token whose owner switches a fee on later. Never
///         deploy to production.
contract FeeOnTransferToken is ERC20 {
    /// @notice Burned share of every transfer, in basis points.
    uint256 public feeBps;

    /// @param feeBps_ Burned share of every transfer, in basis points.
    constructor(uint256 feeBps_) ERC20("Fee On Transfer", "FOT") {
        feeBps = feeBps_;
    }

    /// @notice Sets the burned share of every later transfer. Anyone may call: test token.
    function setFee(uint256 feeBps_) external {
        feeBps = feeBps_;
    }

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = value * feeBps / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
