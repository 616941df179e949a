// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IAgreementStore, ConditionState} from "../interfaces/IAgreementStore.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";
import {PaymentTerms} from "../libraries/PaymentTerms.sol";
import {Condition} from "./Condition.sol";
import {LockPaymentCondition} from "./LockPaymentCondition.sol";

/// @title EscrowPaymentCondition
/// @notice Holds every locked payment and settles each agreement's payment exactly once: released to
///         the receivers when the lock and all release conditions are Fulfilled, or refunded to the
///         payer when a release condition is Aborted. Network fees accrue here on release and are
///         withdrawn in bulk by the network's fee receiver.
/// @dev Value hash: `keccak256(abi.encode(lockConditionId, releaseConditions))`. The escrow derives the
///      lock condition's id from the payment terms it is given and `address(this)`, so it can only pay
///      out exactly what that very lock put in, for that very agreement: there is no pooled balance to
///      drain. Settlement moves the escrow condition to Fulfilled (released) or Aborted (refunded)
///      before any transfer, so it happens once. A receiver whose transfer fails (a reverting contract,
///      a blocklisted address) does not block the others: its share is credited for {withdraw}.
contract EscrowPaymentCondition is Condition, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Gas given to an ETH receiver on a pushed payment; a receiver that needs more is credited.
    uint256 public constant ETH_PUSH_GAS = 50_000;

    /// @notice The lock payment condition whose payments this escrow holds.
    address public immutable lockCondition;

    /// @notice Amount of `token` (zero address: ETH) that `account` can withdraw.
    mapping(address token => mapping(address account => uint256)) public credits;
    /// @notice Sum of all credits of `token` not yet withdrawn.
    mapping(address token => uint256) public totalCredits;
    /// @notice Network fees of `token` released and not yet withdrawn by the fee receiver.
    mapping(address token => uint256) public accruedFees;

    /// @notice The payment of `agreementId` was released: `amount` to its receivers, `fee` accrued.
    event PaymentReleased(
        bytes32 indexed agreementId, bytes32 indexed conditionId, address token, uint256 amount, uint256 fee
    );
    /// @notice The payment of `agreementId` was refunded to `payer`.
    event PaymentRefunded(
        bytes32 indexed agreementId, bytes32 indexed conditionId, address indexed payer, address token, uint256 amount
    );
    /// @notice A transfer to `account` failed; `amount` was credited for withdrawal instead.
    event PaymentCredited(bytes32 indexed agreementId, address indexed account, address token, uint256 amount);
    /// @notice `account` withdrew its credit of `token` to `to`.
    event CreditWithdrawn(address indexed account, address indexed token, address to, uint256 amount);
    /// @notice The fee receiver withdrew the accrued fees of `token` to `to`.
    event FeesWithdrawn(address indexed receiver, address indexed token, address to, uint256 amount);

    /// @notice A release needs at least one release condition.
    error NoReleaseConditions();
    /// @notice None of the release conditions is Aborted, so there is nothing to refund.
    error NoReleaseConditionAborted();
    /// @notice The caller has no credit of this token.
    error NothingToWithdraw(address account, address token);
    /// @notice The withdrawal recipient is the zero address.
    error InvalidRecipient();
    /// @notice Sending ETH to the withdrawal recipient failed.
    error EthTransferFailed(address to);
    /// @notice Only the lock condition may send ETH to the escrow.
    error UnexpectedEth(address sender);
    /// @notice The lock condition address is zero.
    error InvalidLockCondition();
    /// @notice Only the network fee receiver may withdraw fees.
    error NotFeeReceiver(address caller);
    /// @notice No fees of this token have accrued.
    error NoFeesAccrued(address token);
    /// @notice Escrow conditions settle only by release or refund, never by time out.
    error EscrowCannotTimeOut(bytes32 conditionId);

    /// @param store The agreement store.
    /// @param lockCondition_ The lock payment condition that pays into this escrow.
    constructor(IAgreementStore store, address lockCondition_) Condition(store) {
        if (lockCondition_ == address(0)) revert InvalidLockCondition();
        lockCondition = lockCondition_;
    }

    /// @notice Accepts ETH from the lock condition only.
    receive() external payable {
        if (msg.sender != lockCondition) revert UnexpectedEth(msg.sender);
    }

    /// @notice Value hash of an escrow condition.
    /// @param lockConditionId The agreement's lock payment condition.
    /// @param releaseConditions Conditions that must all be Fulfilled for a release.
    function hashValues(bytes32 lockConditionId, bytes32[] calldata releaseConditions)
        external
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(lockConditionId, releaseConditions));
    }

    /// @notice Releases the payment of `agreementId` to its receivers. Anyone may call (typically the
    ///         provider's keeper) once the lock and every release condition are Fulfilled.
    /// @param agreementId The agreement.
    /// @param did The asset paid for.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param payer The consumer who paid.
    /// @param receivers Receivers as agreed.
    /// @param amounts Amounts as agreed.
    /// @param fee Network fee as agreed; accrued for the fee receiver.
    /// @param releaseConditions The agreement's release conditions (e.g. its access condition).
    /// @return conditionId The fulfilled escrow condition.
    function release(
        bytes32 agreementId,
        bytes32 did,
        address token,
        address payer,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee,
        bytes32[] calldata releaseConditions
    ) external nonReentrant returns (bytes32 conditionId) {
        uint256 count = releaseConditions.length;
        if (count == 0) revert NoReleaseConditions();
        bytes32 lockConditionId = _lockConditionId(agreementId, did, token, payer, receivers, amounts, fee);
        _requireFulfilled(lockConditionId);
        for (uint256 i; i < count; ++i) {
            _requireFulfilled(releaseConditions[i]);
        }
        conditionId = conditionIdOf(agreementId, keccak256(abi.encode(lockConditionId, releaseConditions)));
        agreementStore.fulfil(conditionId);

        if (fee != 0) accruedFees[token] += fee;
        uint256 total = 0;
        for (uint256 i; i < receivers.length; ++i) {
            total += amounts[i];
            _pay(agreementId, token, receivers[i], amounts[i]);
        }
        emit PaymentReleased(agreementId, conditionId, token, total, fee);
    }

    /// @notice Refunds the payment of `agreementId` to its payer. Anyone may call once the lock is
    ///         Fulfilled and at least one release condition is Aborted (e.g. the provider never served
    ///         and the access condition timed out).
    /// @param agreementId The agreement.
    /// @param did The asset paid for.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param payer The consumer who paid and is refunded.
    /// @param receivers Receivers as agreed.
    /// @param amounts Amounts as agreed.
    /// @param fee Network fee as agreed; refunded too.
    /// @param releaseConditions The agreement's release conditions.
    /// @return conditionId The escrow condition, now Aborted.
    function refund(
        bytes32 agreementId,
        bytes32 did,
        address token,
        address payer,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee,
        bytes32[] calldata releaseConditions
    ) external nonReentrant returns (bytes32 conditionId) {
        bytes32 lockConditionId = _lockConditionId(agreementId, did, token, payer, receivers, amounts, fee);
        _requireFulfilled(lockConditionId);
        bool anyAborted = false;
        for (uint256 i; i < releaseConditions.length; ++i) {
            if (agreementStore.conditionState(releaseConditions[i]) == ConditionState.Aborted) {
                anyAborted = true;
                break;
            }
        }
        if (!anyAborted) revert NoReleaseConditionAborted();
        conditionId = conditionIdOf(agreementId, keccak256(abi.encode(lockConditionId, releaseConditions)));
        agreementStore.abort(conditionId);

        uint256 total = fee;
        for (uint256 i; i < amounts.length; ++i) {
            total += amounts[i];
        }
        _pay(agreementId, token, payer, total);
        emit PaymentRefunded(agreementId, conditionId, payer, token, total);
    }

    /// @notice Always reverts: an escrow condition is Aborted only by {refund}, which pays the payer
    ///         back in the same step. (Templates create escrow conditions without time out; this
    ///         keeps locked funds from being stranded even if one did not.)
    function abortTimedOut(bytes32 conditionId) external pure override {
        revert EscrowCannotTimeOut(conditionId);
    }

    /// @notice Withdraws the caller's whole credit of `token` to `to`.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param to Recipient (e.g. another address when the caller is blocklisted by the token).
    function withdraw(address token, address to) external nonReentrant {
        if (to == address(0)) revert InvalidRecipient();
        uint256 amount = credits[token][msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender, token);
        credits[token][msg.sender] = 0;
        totalCredits[token] -= amount;
        _send(token, to, amount);
        emit CreditWithdrawn(msg.sender, token, to, amount);
    }

    /// @notice Withdraws all accrued network fees of `token` to `to`. Only the network fee receiver
    ///         currently set on the lock condition may call.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param to Recipient of the fees.
    function withdrawFees(address token, address to) external nonReentrant {
        if (LockPaymentCondition(lockCondition).networkFee().receiver != msg.sender) {
            revert NotFeeReceiver(msg.sender);
        }
        if (to == address(0)) revert InvalidRecipient();
        uint256 amount = accruedFees[token];
        if (amount == 0) revert NoFeesAccrued(token);
        accruedFees[token] = 0;
        _send(token, to, amount);
        emit FeesWithdrawn(msg.sender, token, to, amount);
    }

    function _lockConditionId(
        bytes32 agreementId,
        bytes32 did,
        address token,
        address payer,
        address[] calldata receivers,
        uint256[] calldata amounts,
        uint256 fee
    ) private view returns (bytes32) {
        return AgreementIds.conditionId(
            agreementId,
            lockCondition,
            PaymentTerms.lockValueHash(did, address(this), token, payer, receivers, amounts, fee)
        );
    }

    /// @dev Sends `amount` with full gas, reverting on failure (withdrawals).
    function _send(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            // `to` is chosen by the account whose own credit (or the fee receiver's accrued fees) is
            // being withdrawn, and the amount was zeroed before this call.
            // slither-disable-next-line arbitrary-send-eth
            (bool sent,) = to.call{value: amount}("");
            if (!sent) revert EthTransferFailed(to);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    /// @dev Pushes a payment; if the push fails, credits it for a later {withdraw} instead.
    function _pay(bytes32 agreementId, address token, address to, uint256 amount) private {
        bool sent;
        if (token == address(0)) {
            // No return data is copied: a receiver cannot make the payer spend gas on a large reply.
            assembly ("memory-safe") {
                sent := call(ETH_PUSH_GAS, to, amount, 0, 0, 0, 0)
            }
        } else {
            sent = IERC20(token).trySafeTransfer(to, amount);
        }
        if (!sent) {
            credits[token][to] += amount;
            totalCredits[token] += amount;
            emit PaymentCredited(agreementId, to, token, amount);
        }
    }
}
