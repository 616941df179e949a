// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {PaymentTerms} from "../libraries/PaymentTerms.sol";
import {Condition} from "./Condition.sol";

/// @title LockPaymentCondition
/// @notice Fulfilled when the agreement's payer moves the agreed payment into the escrow.
/// @dev Value hash: {PaymentTerms.lockValueHash}. The payer is bound in it, so only the payer's own
///      payment can fulfil the lock (directly, or through an approved template in the same transaction
///      as the agreement's creation). The state changes before any token moves, and the store refuses
///      a lock after its time out: a late payment reverts and is never taken. Tokens that deliver less
///      than the amount sent (fee-on-transfer) are refused, so the escrow holds exactly what it owes.
///      Also keeps the network fee rate that templates charge on every payment.
contract LockPaymentCondition is Condition, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Highest network fee governance may set, in basis points (10%).
    uint16 public constant MAX_FEE_BPS = 1_000;
    /// @notice Basis points in one whole.
    uint16 public constant BPS = 10_000;

    /// @notice The network fee: `bps` of every payment's price, accrued in the escrow for `receiver`.
    struct NetworkFee {
        address receiver;
        uint16 bps;
    }

    NetworkFee private _networkFee;

    /// @notice Governance set the network fee.
    event NetworkFeeSet(address indexed receiver, uint16 bps);
    /// @notice `payer` locked `amount` of `token` in `escrow` for `agreementId`.
    event PaymentLocked(
        bytes32 indexed agreementId,
        bytes32 indexed conditionId,
        address indexed payer,
        address escrow,
        address token,
        uint256 amount
    );

    /// @notice The caller is not a governor.
    error NotGovernor(address caller);
    /// @notice The caller is not an approved template.
    error NotApprovedTemplate(address caller);
    /// @notice The fee exceeds `MAX_FEE_BPS`.
    error FeeTooHigh(uint16 bps, uint16 max);
    /// @notice A non-zero fee needs a non-zero receiver.
    error InvalidFeeReceiver();
    /// @notice The ETH sent does not match the payment (or ETH was sent with an ERC20 payment).
    error IncorrectValue(uint256 expected, uint256 sent);
    /// @notice The escrow received a different amount of tokens than was transferred.
    error TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice The escrow did not accept the ETH.
    error EthForwardFailed();
    /// @notice The escrow address is zero.
    error InvalidEscrow();

    /// @param store The agreement store (also the source of the governor role and template approvals).
    constructor(IAgreementStore store) Condition(store) {}

    /// @notice Value hash of a lock condition; see {PaymentTerms.lockValueHash}.
    function hashValues(
        bytes32 did,
        address escrow,
        address token,
        address payer,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee
    ) external pure returns (bytes32) {
        return PaymentTerms.lockValueHash(did, escrow, token, payer, receivers, amounts, fee);
    }

    /// @notice Pays the agreed amount into escrow, as the agreement's payer (the caller).
    /// @dev For ERC20 the caller must have approved this contract for the total; for ETH send the total.
    /// @param agreementId The agreement.
    /// @param did The asset paid for.
    /// @param escrow The escrow named in the agreement.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param receivers Receivers as agreed.
    /// @param amounts Amounts as agreed.
    /// @param fee Network fee as agreed.
    /// @return conditionId The fulfilled lock condition.
    function lock(
        bytes32 agreementId,
        bytes32 did,
        address escrow,
        address token,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee
    ) external payable nonReentrant returns (bytes32 conditionId) {
        conditionId = _lock(agreementId, did, escrow, token, msg.sender, receivers, amounts, fee);
    }

    /// @notice Pays into escrow on behalf of `payer`, who called the template in this transaction.
    ///         Approved templates only: they pass their own caller as `payer`.
    /// @param agreementId The agreement.
    /// @param did The asset paid for.
    /// @param escrow The escrow named in the agreement.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param payer The consumer paying; for ERC20 it must have approved this contract.
    /// @param receivers Receivers as agreed.
    /// @param amounts Amounts as agreed.
    /// @param fee Network fee as agreed.
    /// @return conditionId The fulfilled lock condition.
    function lockFor(
        bytes32 agreementId,
        bytes32 did,
        address escrow,
        address token,
        address payer,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee
    ) external payable nonReentrant returns (bytes32 conditionId) {
        if (!agreementStore.isTemplateApproved(msg.sender)) revert NotApprovedTemplate(msg.sender);
        conditionId = _lock(agreementId, did, escrow, token, payer, receivers, amounts, fee);
    }

    /// @notice Sets the network fee charged on every new agreement's payment. Governors only.
    ///         Agreements keep the fee in force when they were created.
    /// @param receiver Withdraws the fees accrued in the escrow; may be zero only when `bps` is zero.
    /// @param bps Fee in basis points of the price, at most `MAX_FEE_BPS`.
    function setNetworkFee(address receiver, uint16 bps) external {
        if (!agreementStore.isGovernor(msg.sender)) revert NotGovernor(msg.sender);
        if (bps > MAX_FEE_BPS) revert FeeTooHigh(bps, MAX_FEE_BPS);
        if (bps != 0 && receiver == address(0)) revert InvalidFeeReceiver();
        _networkFee = NetworkFee(receiver, bps);
        emit NetworkFeeSet(receiver, bps);
    }

    /// @notice The current network fee.
    function networkFee() external view returns (NetworkFee memory) {
        return _networkFee;
    }

    /// @notice The network fee on a price of `amount` at the current rate, rounded down.
    function quoteFee(uint256 amount) external view returns (uint256) {
        return amount * _networkFee.bps / BPS;
    }

    function _lock(
        bytes32 agreementId,
        bytes32 did,
        address escrow,
        address token,
        address payer,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee
    ) private returns (bytes32 conditionId) {
        if (escrow == address(0)) revert InvalidEscrow();
        uint256 total = PaymentTerms.price(receivers, amounts) + fee;
        conditionId =
            conditionIdOf(agreementId, PaymentTerms.lockValueHash(did, escrow, token, payer, receivers, amounts, fee));
        // Effects first: the store checks ownership, state and time window, and reverts a late payment.
        agreementStore.fulfil(conditionId);
        if (token == address(0)) {
            if (msg.value != total) revert IncorrectValue(total, msg.value);
            // `escrow` is bound in the condition id just fulfilled: any other address would have
            // addressed a condition that does not exist, and the store would have reverted.
            // slither-disable-next-line arbitrary-send-eth
            (bool sent,) = escrow.call{value: total}("");
            if (!sent) revert EthForwardFailed();
        } else {
            if (msg.value != 0) revert IncorrectValue(0, msg.value);
            IERC20 erc20 = IERC20(token);
            uint256 before = erc20.balanceOf(escrow);
            erc20.safeTransferFrom(payer, escrow, total);
            uint256 received = erc20.balanceOf(escrow);
            received = received > before ? received - before : 0;
            if (received != total) revert TransferAmountMismatch(total, received);
        }
        emit PaymentLocked(agreementId, conditionId, payer, escrow, token, total);
    }
}
