// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title RebasingToken
/// @notice Test token whose balances all scale when anyone calls {rebase}, like elastic-supply and
///         staking tokens. Shows why the protocol does not support rebasing tokens: escrowed payments
///         are fixed amounts, so a negative rebase leaves the escrow short and a positive one strands
///         the surplus. Never deploy to production.
contract RebasingToken {
    uint256 private constant ONE = 1e18;

    /// @notice Balance multiplier, scaled by 1e18.
    uint256 public factor = ONE;
    mapping(address account => uint256) private _shares;
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    /// @notice ERC20 transfer event.
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice ERC20 approval event.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice The balance or allowance is too low.
    error Insufficient();

    /// @notice Mints `amount` to `to`. Anyone may call: test token.
    function mint(address to, uint256 amount) external {
        _shares[to] += amount * ONE / factor;
        emit Transfer(address(0), to, amount);
    }

    /// @notice Scales every balance by `numerator / denominator`.
    function rebase(uint256 numerator, uint256 denominator) external {
        factor = factor * numerator / denominator;
    }

    /// @notice ERC20 balance.
    function balanceOf(address account) public view returns (uint256) {
        return _shares[account] * factor / ONE;
    }

    /// @notice ERC20 approve.
    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    /// @notice ERC20 transfer.
    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    /// @notice ERC20 transferFrom.
    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed < amount) revert Insufficient();
        if (allowed != type(uint256).max) allowance[from][msg.sender] = allowed - amount;
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) private {
        uint256 shares = amount * ONE / factor;
        if (_shares[from] < shares) revert Insufficient();
        _shares[from] -= shares;
        _shares[to] += shares;
        emit Transfer(from, to, amount);
    }
}
