// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title PermitToken
/// @notice Test token: an OpenZeppelin ERC20 with EIP-2612 permits that anyone can mint. Never deploy
///         to production.
contract PermitToken is ERC20Permit {
    /// @param name_ Token name (also the EIP-712 domain name of its permits).
    /// @param symbol_ Token symbol.
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) ERC20Permit(name_) {}

    /// @notice Mints `amount` to `to`. Anyone may call: test token.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
