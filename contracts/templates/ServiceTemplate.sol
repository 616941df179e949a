// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionSpec} from "../interfaces/IAgreementStore.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";
import {PaymentTerms} from "../libraries/PaymentTerms.sol";
import {LockPaymentCondition} from "../conditions/LockPaymentCondition.sol";
import {ServiceCondition} from "../conditions/ServiceCondition.sol";

/// @title ServiceTemplate
/// @notice Base of the templates that sell a service on an asset: lock payment -> service -> escrow.
/// @dev Conditions created for every agreement, in this order:
///      0. lock payment: `PaymentTerms.lockValueHash(did, escrow, token, consumer, receivers, amounts)`,
///         times out after half the service time out (the payment window);
///      1. service (access or compute): `hashValues(did, consumer, lockConditionId)`, times out after
///         the service time out, which is always finite, so the consumer always has a refund path;
///      2. escrow: `hashValues(lockConditionId, [serviceConditionId])`, no time out.
///      The network fee in force at creation is appended to the receivers (if non-zero), so it is
///      fixed for the agreement's whole life.
abstract contract ServiceTemplate {
    /// @notice Shortest service time out a consumer may ask for.
    uint32 public constant MIN_SERVICE_TIMEOUT = 1 hours;
    /// @notice Longest service time out a consumer may ask for.
    uint32 public constant MAX_SERVICE_TIMEOUT = 90 days;
    /// @notice Service time out used when the consumer asks for 0.
    uint32 public constant DEFAULT_SERVICE_TIMEOUT = 3 days;

    /// @notice What the consumer buys and how the price is split.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param receivers Who is paid on release (the network fee is added by the template).
    /// @param amounts How much each receiver is paid.
    /// @param serviceTimeout Seconds the provider has to serve (0: `DEFAULT_SERVICE_TIMEOUT`).
    struct Terms {
        address token;
        address[] receivers;
        uint256[] amounts;
        uint32 serviceTimeout;
    }

    /// @notice The ids and final payment split of an agreement.
    struct AgreementIdsOf {
        bytes32 agreementId;
        bytes32 lockConditionId;
        bytes32 serviceConditionId;
        bytes32 escrowConditionId;
        address[] receivers;
        uint256[] amounts;
        uint32 serviceTimeout;
    }

    /// @notice The agreement store.
    IAgreementStore public immutable agreementStore;
    /// @notice The lock payment condition.
    LockPaymentCondition public immutable lockCondition;
    /// @notice The service condition (access or compute).
    ServiceCondition public immutable serviceCondition;
    /// @notice The escrow payment condition.
    address public immutable escrowCondition;

    /// @notice The payment terms of a new agreement: with the store's `AgreementCreated` (asset,
    ///         consumer, condition ids in the order lock, service, escrow) they are everything a
    ///         consumer, provider or keeper needs to fulfil, release or refund it.
    event AgreementTerms(
        bytes32 indexed agreementId, address token, address[] receivers, uint256[] amounts, uint32 serviceTimeout
    );

    /// @notice The service time out is outside [MIN_SERVICE_TIMEOUT, MAX_SERVICE_TIMEOUT].
    error InvalidServiceTimeout(uint32 serviceTimeout);
    /// @notice A constructor address is zero.
    error InvalidAddress();

    /// @param store The agreement store.
    /// @param lock The lock payment condition.
    /// @param service The service condition.
    /// @param escrow The escrow payment condition.
    constructor(IAgreementStore store, LockPaymentCondition lock, ServiceCondition service, address escrow) {
        if (
            address(store) == address(0) || address(lock) == address(0) || address(service) == address(0)
                || escrow == address(0)
        ) revert InvalidAddress();
        agreementStore = store;
        lockCondition = lock;
        serviceCondition = service;
        escrowCondition = escrow;
    }

    /// @notice Creates an agreement for `did`; the consumer (caller) pays later with
    ///         {LockPaymentCondition-lock}, within the payment window.
    /// @param seed Caller-chosen seed; the agreement id is `keccak256(abi.encode(seed, msg.sender))`.
    /// @param did The asset.
    /// @param terms Payment and time out.
    /// @return agreementId The new agreement.
    function createAgreement(bytes32 seed, bytes32 did, Terms calldata terms) external returns (bytes32 agreementId) {
        (agreementId,,) = _create(seed, did, terms);
    }

    /// @notice Creates an agreement for `did` and pays for it in the same transaction. For ERC20 the
    ///         caller must have approved the lock condition for the total (price plus network fee); for
    ///         ETH, send the total.
    /// @param seed Caller-chosen seed.
    /// @param did The asset.
    /// @param terms Payment and time out.
    /// @return agreementId The new agreement.
    function createAgreementAndLock(bytes32 seed, bytes32 did, Terms calldata terms)
        external
        payable
        returns (bytes32 agreementId)
    {
        address[] memory receivers;
        uint256[] memory amounts;
        (agreementId, receivers, amounts) = _create(seed, did, terms);
        lockCondition.lockFor{value: msg.value}(
            agreementId, did, escrowCondition, terms.token, msg.sender, receivers, amounts
        );
    }

    /// @notice The ids and final payment split that `consumer` would get by calling a create function
    ///         now with `seed`, `did` and `terms` (the network fee may change before then).
    function previewAgreement(bytes32 seed, address consumer, bytes32 did, Terms calldata terms)
        external
        view
        returns (AgreementIdsOf memory ids)
    {
        ids.serviceTimeout = _serviceTimeout(terms.serviceTimeout);
        (ids.receivers, ids.amounts) = _withFee(terms);
        ids.agreementId = AgreementIds.agreementId(seed, consumer);
        (, ids.lockConditionId, ids.serviceConditionId, ids.escrowConditionId) = _conditions(
            ids.agreementId, did, consumer, terms.token, ids.receivers, ids.amounts, ids.serviceTimeout
        );
    }

    function _create(bytes32 seed, bytes32 did, Terms calldata terms)
        private
        returns (bytes32 agreementId, address[] memory receivers, uint256[] memory amounts)
    {
        uint32 serviceTimeout = _serviceTimeout(terms.serviceTimeout);
        (receivers, amounts) = _withFee(terms);
        agreementId = AgreementIds.agreementId(seed, msg.sender);
        (ConditionSpec[] memory specs,,,) =
            _conditions(agreementId, did, msg.sender, terms.token, receivers, amounts, serviceTimeout);
        agreementStore.createAgreement(seed, msg.sender, did, specs);
        emit AgreementTerms(agreementId, terms.token, receivers, amounts, serviceTimeout);
    }

    /// @dev The three condition specs of an agreement and the ids the store will derive from them.
    function _conditions(
        bytes32 agreementId,
        bytes32 did,
        address consumer,
        address token,
        address[] memory receivers,
        uint256[] memory amounts,
        uint32 serviceTimeout
    ) private view returns (ConditionSpec[] memory specs, bytes32 lockId, bytes32 serviceId, bytes32 escrowId) {
        specs = new ConditionSpec[](3);
        bytes32 valueHash = PaymentTerms.lockValueHash(did, escrowCondition, token, consumer, receivers, amounts);
        specs[0] = ConditionSpec(address(lockCondition), valueHash, 0, serviceTimeout / 2);
        lockId = AgreementIds.conditionId(agreementId, address(lockCondition), valueHash);

        valueHash = keccak256(abi.encode(did, consumer, lockId));
        specs[1] = ConditionSpec(address(serviceCondition), valueHash, 0, serviceTimeout);
        serviceId = AgreementIds.conditionId(agreementId, address(serviceCondition), valueHash);

        bytes32[] memory releaseConditions = new bytes32[](1);
        releaseConditions[0] = serviceId;
        valueHash = keccak256(abi.encode(lockId, releaseConditions));
        specs[2] = ConditionSpec(escrowCondition, valueHash, 0, 0);
        escrowId = AgreementIds.conditionId(agreementId, escrowCondition, valueHash);
    }

    /// @dev The receivers and amounts with the current network fee appended (when non-zero), validated.
    function _withFee(Terms calldata terms)
        private
        view
        returns (address[] memory receivers, uint256[] memory amounts)
    {
        uint256 price = PaymentTerms.total(terms.receivers, terms.amounts);
        (address feeReceiver, uint256 fee) = lockCondition.quoteFee(price);
        uint256 count = terms.receivers.length;
        if (fee == 0) {
            return (terms.receivers, terms.amounts);
        }
        if (count == PaymentTerms.MAX_RECEIVERS) revert PaymentTerms.TooManyReceivers(count + 1);
        receivers = new address[](count + 1);
        amounts = new uint256[](count + 1);
        for (uint256 i; i < count; ++i) {
            receivers[i] = terms.receivers[i];
            amounts[i] = terms.amounts[i];
        }
        receivers[count] = feeReceiver;
        amounts[count] = fee;
    }

    function _serviceTimeout(uint32 requested) private pure returns (uint32) {
        if (requested == 0) return DEFAULT_SERVICE_TIMEOUT;
        if (requested < MIN_SERVICE_TIMEOUT || requested > MAX_SERVICE_TIMEOUT) {
            revert InvalidServiceTimeout(requested);
        }
        return requested;
    }
}
