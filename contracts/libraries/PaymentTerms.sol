// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice The payment terms of an agreement: `token` (the zero address for native ETH) split as
///         `amounts[i]` to `receivers[i]`, plus a network `fee` fixed when the agreement is created.
struct Payment {
    address token;
    address[] receivers;
    uint256[] amounts;
    uint256 fee;
}

/// @title PaymentTerms
/// @notice Validation and hashing of the payment terms shared by templates, the payment condition and
///         the service conditions.
/// @dev The payment condition collects exactly `sum(amounts) + fee` and pays out exactly the same
///      terms, because both steps derive the payment condition's id from them.
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
    /// @notice Receiver `index` is a contract of the protocol, which could never use or pass on what
    ///         it received.
    error ProtocolReceiver(uint256 index, address receiver);

    /// @notice Validates the split and returns the price: the sum of `amounts`, fee excluded.
    /// @param receivers Who is paid on release.
    /// @param amounts How much each receiver is paid.
    /// @param refused Protocol contracts that may not be receivers.
    function price(address[] calldata receivers, uint256[] calldata amounts, address[5] memory refused)
        internal
        pure
        returns (uint256 sum)
    {
        uint256 count = receivers.length;
        if (count == 0) revert NoReceivers();
        if (count > MAX_RECEIVERS) revert TooManyReceivers(count);
        if (count != amounts.length) revert LengthMismatch(count, amounts.length);
        for (uint256 i; i < count; ++i) {
            address receiver = receivers[i];
            if (receiver == address(0)) revert ZeroReceiver(i);
            if (
                receiver == refused[0] || receiver == refused[1] || receiver == refused[2] || receiver == refused[3]
                    || receiver == refused[4]
            ) revert ProtocolReceiver(i, receiver);
            uint256 amount = amounts[i];
            if (amount == 0) revert ZeroAmount(i);
            sum += amount;
        }
    }

    /// @notice Value hash of a payment condition.
    /// @param did The asset paid for.
    /// @param payer The only account whose payment fulfils the condition; refunds go back to it.
    /// @param service The condition contract whose condition (same agreement, value hash
    ///        `keccak256(abi.encode(did, payer, paymentConditionId))`) releases the payment.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param receivers Who is paid on release.
    /// @param amounts How much each receiver is paid on release.
    /// @param fee Network fee, accrued on release (refunded with the rest).
    function valueHash(
        bytes32 did,
        address payer,
        address service,
        address token,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee
    ) internal pure returns (bytes32) {
        return keccak256(abi.encode(did, payer, service, token, receivers, amounts, fee));
    }

    /// @notice Value hash of the service condition that releases a payment.
    /// @param did The asset served.
    /// @param consumer The consumer served (the payer).
    /// @param paymentConditionId The payment condition it releases.
    function serviceValueHash(bytes32 did, address consumer, bytes32 paymentConditionId)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(did, consumer, paymentConditionId));
    }
}
