// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IAgreementStore, ConditionState} from "../interfaces/IAgreementStore.sol";
import {IServiceTemplate} from "../interfaces/IServiceTemplate.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";
import {Offer} from "../libraries/Offers.sol";
import {Payment, PaymentTerms} from "../libraries/PaymentTerms.sol";
import {Condition} from "./Condition.sol";

/// @title PaymentCondition
/// @notice Takes each agreement's payment into escrow and settles it exactly once: released to the
///         receivers when the agreement's service is Fulfilled, or refunded to the payer when the
///         service was Aborted (timed out). Network fees accrue here on release and are withdrawn in
///         bulk by the network's fee receiver.
/// @dev One condition per payment, whose record in the store moves Unfulfilled -> Fulfilled (paid)
///      -> Released | Refunded, or Unfulfilled -> Aborted when nobody paid within the payment window.
///      Because the lock and the settlement are one record, no template, however written, can settle
///      one payment twice: the store settles a Fulfilled condition once. Value hash:
///      {PaymentTerms-valueHash}: asset, payer, releasing service contract, token, receivers, amounts
///      and fee are all bound, so a payment can only be taken from its payer and paid out as agreed.
///      The payer is always the caller of this contract: tokens are never pulled from anyone else,
///      whatever a template does. The releasing service condition is derived, not listed: it is the
///      condition of the same agreement held by `service` with value hash
///      `keccak256(abi.encode(did, payer, paymentConditionId))`.
///      A receiver whose transfer fails (a reverting contract, a blocklisted address) does not block
///      the others: its share is credited for {withdraw}. Tokens that deliver less than the amount
///      sent (fee-on-transfer) are refused; rebasing tokens are not supported (see docs/protocol.md).
contract PaymentCondition is Condition, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Highest network fee governance may set, in basis points (10%).
    uint16 public constant MAX_FEE_BPS = 1_000;
    /// @notice Basis points in one whole.
    uint16 public constant BPS = 10_000;
    /// @notice Gas given to an ETH receiver on a pushed payment; a receiver that needs more is credited.
    uint256 public constant ETH_PUSH_GAS = 50_000;

    /// @notice The network fee: `bps` of every payment's price, accrued here for `receiver`.
    struct NetworkFee {
        address receiver;
        uint16 bps;
    }

    /// @notice An EIP-2612 permit signature of the payer for the most it pays in a purchase.
    struct PermitSignature {
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    NetworkFee private _networkFee;

    /// @notice Amount of `token` (zero address: ETH) that `account` can withdraw.
    mapping(address token => mapping(address account => uint256)) public credits;
    /// @notice Sum of all credits of `token` not yet withdrawn.
    mapping(address token => uint256) public totalCredits;
    /// @notice Network fees of `token` released and not yet withdrawn by the fee receiver.
    mapping(address token => uint256) public accruedFees;

    /// @notice Governance set the network fee.
    event NetworkFeeSet(address indexed receiver, uint16 bps);
    /// @notice The payment of `agreementId` was released: `amount` to its receivers, `fee` accrued.
    ///         (The payment condition's id is in the store's `AgreementCreated`.)
    event PaymentReleased(bytes32 indexed agreementId, address token, uint256 amount, uint256 fee);
    /// @notice The payment of `agreementId` was refunded to `payer`.
    event PaymentRefunded(bytes32 indexed agreementId, address indexed payer, address token, uint256 amount);
    /// @notice A transfer to `account` failed; `amount` was credited for withdrawal instead.
    event PaymentCredited(bytes32 indexed agreementId, address indexed account, address token, uint256 amount);
    /// @notice `account` withdrew its credit of `token` to `to`.
    event CreditWithdrawn(address indexed account, address indexed token, address to, uint256 amount);
    /// @notice The fee receiver withdrew the accrued fees of `token` to `to`.
    event FeesWithdrawn(address indexed receiver, address indexed token, address to, uint256 amount);

    /// @notice The caller is not a governor.
    error NotGovernor(address caller);
    /// @notice The fee exceeds `MAX_FEE_BPS`.
    error FeeTooHigh(uint16 bps, uint16 max);
    /// @notice A non-zero fee needs a non-zero receiver.
    error InvalidFeeReceiver();
    /// @notice The payment's total is more than the most the payer accepted to pay.
    error TotalAboveMaximum(uint256 total, uint256 maxTotal);
    /// @notice The ETH sent does not match the payment (or ETH was sent with an ERC20 payment).
    error IncorrectValue(uint256 expected, uint256 sent);
    /// @notice This contract received a different amount of tokens than was transferred.
    error TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice A permit was given for a native ETH payment.
    error PermitForEth();
    /// @notice The service condition that releases the payment is not Fulfilled.
    error ServiceNotFulfilled(bytes32 serviceConditionId, ConditionState state);
    /// @notice The service condition that releases the payment has not been Aborted (and exists).
    error ServiceNotAborted(bytes32 serviceConditionId, ConditionState state);
    /// @notice The caller has no credit of this token.
    error NothingToWithdraw(address account, address token);
    /// @notice The withdrawal recipient is the zero address.
    error InvalidRecipient();
    /// @notice Sending ETH to the withdrawal recipient failed.
    error EthTransferFailed(address to);
    /// @notice Only the network fee receiver may withdraw fees.
    error NotFeeReceiver(address caller);
    /// @notice No fees of this token have accrued.
    error NoFeesAccrued(address token);

    /// @param store The agreement store (also the source of the governor role).
    constructor(IAgreementStore store) Condition(store) {}

    /// @notice Value hash of a payment condition; see {PaymentTerms-valueHash}.
    function hashValues(bytes32 did, address payer, address service, Payment calldata payment)
        external
        pure
        returns (bytes32)
    {
        return _valueHash(did, payer, service, payment);
    }

    /// @notice Pays the agreed amount into escrow, as the agreement's payer (the caller). For the
    ///         second step of a two-step purchase (the agreement was created with the template's
    ///         `createAgreement`), within the payment window.
    /// @dev For ERC20 the caller must have approved this contract for the total; for ETH send it.
    /// @param agreementId The agreement.
    /// @param did The asset paid for.
    /// @param service The agreement's service condition contract (access or compute).
    /// @param payment The payment terms, as published in the template's `AgreementTerms`.
    /// @return conditionId The payment condition, now Fulfilled.
    function lock(bytes32 agreementId, bytes32 did, address service, Payment calldata payment)
        external
        payable
        nonReentrant
        returns (bytes32 conditionId)
    {
        uint256 total = _total(service, payment.receivers, payment.amounts, payment.fee);
        conditionId = conditionIdOf(agreementId, _valueHash(did, msg.sender, service, payment));
        _collect(conditionId, payment.token, total);
    }

    /// @notice Buys a service in one transaction: `template` creates an agreement for the caller on the
    ///         provider's signed `offer`, and the caller's payment (price plus network fee) is taken
    ///         into escrow. For ERC20 the caller must have approved this contract for the total; for
    ///         ETH send the total.
    /// @param template The template of the service (e.g. the access template); it verifies the offer.
    ///        Pass an approved template: any other contract cannot create agreements, so at most the
    ///        call pays for one of the caller's own unpaid agreements with exactly these terms.
    /// @param seed Caller-chosen seed of the agreement id; buying the same offer again needs another.
    /// @param offer The provider's offer.
    /// @param signature The provider's signature of `offer`.
    /// @param serviceTimeout Seconds the provider has to serve, within the offer's bounds (0: longest).
    /// @param maxTotal The most the caller accepts to pay in all; a higher fee reverts the purchase.
    /// @return agreementId The new agreement.
    function createAgreementAndPay(
        IServiceTemplate template,
        bytes32 seed,
        Offer calldata offer,
        bytes calldata signature,
        uint32 serviceTimeout,
        uint256 maxTotal
    ) external payable nonReentrant returns (bytes32 agreementId) {
        bytes32 conditionId;
        uint256 total;
        (agreementId, conditionId, total) =
            _createAndPrice(template, seed, offer, signature, serviceTimeout, maxTotal);
        _collect(conditionId, offer.token, total);
    }

    /// @notice As {createAgreementAndPay} for an ERC20 token with EIP-2612 permits: the caller's
    ///         permit for `maxTotal` replaces a standing approval. A client sets `maxTotal` to the
    ///         quoted total, so nothing stays approved; if the fee fell in between, the difference
    ///         stays approved to this contract, which only ever takes tokens from its own caller.
    /// @param template The template of the service.
    /// @param seed Caller-chosen seed of the agreement id.
    /// @param offer The provider's offer (its token must support EIP-2612).
    /// @param signature The provider's signature of `offer`.
    /// @param serviceTimeout Seconds the provider has to serve, within the offer's bounds (0: longest).
    /// @param maxTotal The most the caller accepts to pay in all, and the value of the permit.
    /// @param permit The caller's permit to this contract for `maxTotal`. If it was already used
    ///        (someone submitted it first), the allowance it set is used instead.
    /// @return agreementId The new agreement.
    function createAgreementAndPayWithPermit(
        IServiceTemplate template,
        bytes32 seed,
        Offer calldata offer,
        bytes calldata signature,
        uint32 serviceTimeout,
        uint256 maxTotal,
        PermitSignature calldata permit
    ) external nonReentrant returns (bytes32 agreementId) {
        if (offer.token == address(0)) revert PermitForEth();
        bytes32 conditionId;
        uint256 total;
        (agreementId, conditionId, total) =
            _createAndPrice(template, seed, offer, signature, serviceTimeout, maxTotal);
        // A permit already submitted by someone else reverts here; the transfer below then checks the
        // allowance it left, so front-running the permit cannot block the purchase.
        try IERC20Permit(offer.token).permit(
            msg.sender, address(this), maxTotal, permit.deadline, permit.v, permit.r, permit.s
        ) {} catch {}
        _collect(conditionId, offer.token, total);
    }

    /// @notice Releases the payment of `agreementId` to its receivers. Anyone may call (typically the
    ///         provider's keeper, or the service condition's `fulfilAndRelease`) once the payment is in
    ///         escrow and the agreement's service condition is Fulfilled.
    /// @param agreementId The agreement.
    /// @param did The asset paid for.
    /// @param payer The consumer who paid.
    /// @param service The service condition contract that releases the payment.
    /// @param payment The payment terms.
    /// @return conditionId The payment condition, now Released.
    function release(bytes32 agreementId, bytes32 did, address payer, address service, Payment calldata payment)
        external
        nonReentrant
        returns (bytes32 conditionId)
    {
        conditionId = conditionIdOf(agreementId, _valueHash(did, payer, service, payment));
        bytes32 serviceId = serviceConditionIdOf(agreementId, did, payer, service, conditionId);
        ConditionState serviceState = agreementStore.conditionState(serviceId);
        if (serviceState != ConditionState.Fulfilled) revert ServiceNotFulfilled(serviceId, serviceState);
        // Reverts unless this very payment is in escrow and not settled yet: settlement happens once.
        agreementStore.settle(conditionId, true);

        address token = payment.token;
        uint256 fee = payment.fee;
        if (fee != 0) accruedFees[token] += fee;
        uint256 total = 0;
        uint256 count = payment.receivers.length;
        for (uint256 i; i < count; ++i) {
            uint256 amount = payment.amounts[i];
            total += amount;
            _pay(agreementId, token, payment.receivers[i], amount);
        }
        emit PaymentReleased(agreementId, token, total, fee);
    }

    /// @notice Refunds the payment of `agreementId` to its payer. Anyone may call once the payment is
    ///         in escrow and the agreement's service condition was Aborted (the provider did not serve
    ///         before the time out) or does not exist (it can then never be fulfilled).
    /// @param agreementId The agreement.
    /// @param did The asset paid for.
    /// @param payer The consumer who paid and is refunded.
    /// @param service The service condition contract that would have released the payment.
    /// @param payment The payment terms; the fee is refunded too.
    /// @return conditionId The payment condition, now Refunded.
    function refund(bytes32 agreementId, bytes32 did, address payer, address service, Payment calldata payment)
        external
        nonReentrant
        returns (bytes32 conditionId)
    {
        conditionId = conditionIdOf(agreementId, _valueHash(did, payer, service, payment));
        bytes32 serviceId = serviceConditionIdOf(agreementId, did, payer, service, conditionId);
        ConditionState serviceState = agreementStore.conditionState(serviceId);
        if (serviceState != ConditionState.Aborted && serviceState != ConditionState.Uninitialized) {
            revert ServiceNotAborted(serviceId, serviceState);
        }
        agreementStore.settle(conditionId, false);

        uint256 total = payment.fee;
        uint256 count = payment.amounts.length;
        for (uint256 i; i < count; ++i) {
            total += payment.amounts[i];
        }
        _pay(agreementId, payment.token, payer, total);
        emit PaymentRefunded(agreementId, payer, payment.token, total);
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

    /// @notice Withdraws all accrued network fees of `token` to `to`. Only the current network fee
    ///         receiver may call.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param to Recipient of the fees.
    function withdrawFees(address token, address to) external nonReentrant {
        if (_networkFee.receiver != msg.sender) revert NotFeeReceiver(msg.sender);
        if (to == address(0)) revert InvalidRecipient();
        uint256 amount = accruedFees[token];
        if (amount == 0) revert NoFeesAccrued(token);
        accruedFees[token] = 0;
        _send(token, to, amount);
        emit FeesWithdrawn(msg.sender, token, to, amount);
    }

    /// @notice Sets the network fee charged on every new agreement's payment. Governors only (the
    ///         governance timelock, so a change is announced before it applies). Agreements keep the
    ///         fee in force when they were created, and a consumer's `maxTotal` refuses a higher one.
    /// @param receiver Withdraws the accrued fees; may be zero only when `bps` is zero.
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

    /// @notice The id of the payment condition of `agreementId` with these terms.
    function paymentConditionIdOf(
        bytes32 agreementId,
        bytes32 did,
        address payer,
        address service,
        Payment calldata payment
    ) external view returns (bytes32) {
        return conditionIdOf(agreementId, _valueHash(did, payer, service, payment));
    }

    /// @notice The id of the service condition that releases payment `paymentConditionId`.
    function serviceConditionIdOf(
        bytes32 agreementId,
        bytes32 did,
        address payer,
        address service,
        bytes32 paymentConditionId
    ) public pure returns (bytes32) {
        return AgreementIds.conditionId(
            agreementId, service, PaymentTerms.serviceValueHash(did, payer, paymentConditionId)
        );
    }

    /// @dev Has `template` create the agreement for the caller, and prices its payment at the fee rate
    ///      in force (the template must have bound the same fee, or the payment matches no condition).
    function _createAndPrice(
        IServiceTemplate template,
        bytes32 seed,
        Offer calldata offer,
        bytes calldata signature,
        uint32 serviceTimeout,
        uint256 maxTotal
    ) private returns (bytes32 agreementId, bytes32 conditionId, uint256 total) {
        uint16 feeBps = _networkFee.bps;
        address service;
        (agreementId, service) =
            template.createAgreementFor(msg.sender, seed, offer, signature, serviceTimeout, feeBps);
        address[5] memory refused = [address(this), address(agreementStore), service, address(0), address(0)];
        uint256 price = PaymentTerms.price(offer.receivers, offer.amounts, refused);
        uint256 fee = price * feeBps / BPS;
        total = price + fee;
        if (total > maxTotal) revert TotalAboveMaximum(total, maxTotal);
        conditionId = conditionIdOf(
            agreementId,
            PaymentTerms.valueHash(offer.did, msg.sender, service, offer.token, offer.receivers, offer.amounts, fee)
        );
    }

    /// @dev Validates the split (protocol contracts refused as receivers) and returns price plus fee.
    function _total(address service, address[] calldata receivers, uint256[] calldata amounts, uint256 fee)
        private
        view
        returns (uint256)
    {
        address[5] memory refused = [address(this), address(agreementStore), service, address(0), address(0)];
        return PaymentTerms.price(receivers, amounts, refused) + fee;
    }

    /// @dev Fulfils payment condition `conditionId` and takes `total` of `token` from the caller.
    function _collect(bytes32 conditionId, address token, uint256 total) private {
        // Effects first: the store checks ownership, state and time window, and reverts a late
        // payment or terms that match no agreement, before any token moves.
        agreementStore.fulfil(conditionId);
        if (token == address(0)) {
            if (msg.value != total) revert IncorrectValue(total, msg.value);
        } else {
            if (msg.value != 0) revert IncorrectValue(0, msg.value);
            IERC20 erc20 = IERC20(token);
            uint256 before = erc20.balanceOf(address(this));
            erc20.safeTransferFrom(msg.sender, address(this), total);
            uint256 received = erc20.balanceOf(address(this));
            received = received > before ? received - before : 0;
            if (received != total) revert TransferAmountMismatch(total, received);
        }
    }

    function _valueHash(bytes32 did, address payer, address service, Payment calldata payment)
        private
        pure
        returns (bytes32)
    {
        return PaymentTerms.valueHash(
            did, payer, service, payment.token, payment.receivers, payment.amounts, payment.fee
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
