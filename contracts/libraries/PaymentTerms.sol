// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title PaymentTerms
/// @notice Validation and hashing of the payment terms shared by templates, the lock and the escrow.
/// @dev A payment is `token` (the zero address for native ETH) split as `amounts[i]` to
///      `receivers[i]`, plus a network `fee` fixed when the agreement is created. The lock collects
///      exactly `sum(amounts) + fee` into the escrow; the escrow pays out exactly the same terms,
///      because both derive the lock condition's id from them.
library PaymentTerms {
    /// @notice Most receivers one payment may have.
    uint256 internal constant MAX_RECEIVERS = 16;

    /// @notice A payment needs at least one receiver.
    error NoReceivers();
    /// @notice More receivers than `MAX_RECEIVERS`.
    error TooManyReceivers(uint256 count);
    /// @notice `receivers` and `amounts` differ in length.
    error LengthMismatch(uint256 receivers, uint256 amounts);
    /// @notice Receiver `index` is the zero address.
    error ZeroReceiver(uint256 index);
    /// @notice Amount `index` is zero.
    error ZeroAmount(uint256 index);

    /// @notice Validates the split and returns the price: the sum of `amounts`, fee excluded.
    function price(address[] calldata receivers, uint256[] calldata amounts) internal pure returns (uint256 sum) {
        uint256 count = receivers.length;
        if (count == 0) revert NoReceivers();
        if (count > MAX_RECEIVERS) revert TooManyReceivers(count);
        if (count != amounts.length) revert LengthMismatch(count, amounts.length);
        for (uint256 i; i < count; ++i) {
            if (receivers[i] == address(0)) revert ZeroReceiver(i);
            uint256 amount = amounts[i];
            if (amount == 0) revert ZeroAmount(i);
            sum += amount;
        }
    }

    /// @notice Value hash of a lock payment condition.
    /// @param did The asset paid for.
    /// @param escrow The escrow contract that receives and holds the payment.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param payer The only account whose payment fulfils the lock; refunds go back to it.
    /// @param receivers Who is paid on release.
    /// @param amounts How much each receiver is paid on release.
    /// @param fee Network fee, accrued by the escrow on release (refunded with the rest).
    function lockValueHash(
        bytes32 did,
        address escrow,
        address token,
        address payer,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee
    ) internal pure returns (bytes32) {
        return keccak256(abi.encode(did, escrow, token, payer, receivers, amounts, fee));
    }
}
