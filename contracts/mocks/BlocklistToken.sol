// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title BlocklistToken
/// @notice Test token whose transfers to or from a blocklisted account revert (USDC style).
///         Never deploy to production.
contract BlocklistToken is ERC20 {
    /// @notice Whether an account is blocklisted.
    mapping(address account => bool) public blocked;

    /// @notice The account is blocklisted.
    error Blocked(address account);

    constructor() ERC20("Blocklist", "BLK") {}

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Blocklists or unblocks `account`. Anyone may call: test token.
    function setBlocked(address account, bool isBlocked) external {
        blocked[account] = isBlocked;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blocked[from]) revert Blocked(from);
        if (blocked[to]) revert Blocked(to);
        super._update(from, to, value);
    }
}
