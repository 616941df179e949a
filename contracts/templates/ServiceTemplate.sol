// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionSpec} from "../interfaces/IAgreementStore.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";
import {PaymentTerms} from "../libraries/PaymentTerms.sol";
import {LockPaymentCondition} from "../conditions/LockPaymentCondition.sol";

/// @title ServiceTemplate
/// @notice Base of the templates that sell a service on an asset: lock payment -> service -> escrow.
/// @dev Conditions created for every agreement, in this order:
///      0. lock payment: `PaymentTerms.lockValueHash(did, escrow, token, consumer, receivers, amounts, fee)`,
///         times out after half the service time out (the payment window);
///      1. service (access or compute): `keccak256(abi.encode(did, consumer, lockConditionId))`, times
///         out after the service time out, which is always finite, so the consumer always has a
///         refund path;
///      2. escrow: `keccak256(abi.encode(lockConditionId, [serviceConditionId]))`, no time out.
///      The network fee in force at creation is fixed for the agreement's whole life.
abstract contract ServiceTemplate {
    /// @notice Shortest service time out a consumer may ask for.
    uint32 public constant MIN_SERVICE_TIMEOUT = 1 hours;
    /// @notice Longest service time out a consumer may ask for.
    uint32 public constant MAX_SERVICE_TIMEOUT = 90 days;
    /// @notice Service time out used when the consumer asks for 0.
    uint32 public constant DEFAULT_SERVICE_TIMEOUT = 3 days;

    /// @notice What the consumer buys and how the price is split.
    /// @param token The ERC20 token, or the zero address for native ETH.
    /// @param receivers Who is paid on release.
    /// @param amounts How much each receiver is paid (the network fee comes on top).
    /// @param serviceTimeout Seconds the provider has to serve (0: `DEFAULT_SERVICE_TIMEOUT`).
    struct Terms {
        address token;
        address[] receivers;
        uint256[] amounts;
        uint32 serviceTimeout;
    }

    /// @notice The ids, fee and time out an agreement would get; see {previewAgreement}.
    struct Preview {
        bytes32 agreementId;
        bytes32 lockConditionId;
        bytes32 serviceConditionId;
        bytes32 escrowConditionId;
        uint256 fee;
        uint256 total;
        uint32 serviceTimeout;
    }

    /// @notice The agreement store.
    IAgreementStore public immutable agreementStore;
    /// @notice The lock payment condition.
    LockPaymentCondition public immutable lockCondition;
    /// @notice The service condition (access or compute).
    address public immutable serviceCondition;
    /// @notice The escrow payment condition.
    address public immutable escrowCondition;

    /// @notice The payment terms of a new agreement: with the store's `AgreementCreated` (asset,
    ///         consumer, condition ids in the order lock, service, escrow) they are everything a
    ///         consumer, provider or keeper needs to fulfil, release or refund it.
    event AgreementTerms(
        bytes32 indexed agreementId,
        address token,
        address[] receivers,
        uint256[] amounts,
        uint256 fee,
        uint32 serviceTimeout
    );

    /// @notice The service time out is outside [MIN_SERVICE_TIMEOUT, MAX_SERVICE_TIMEOUT].
    error InvalidServiceTimeout(uint32 serviceTimeout);
    /// @notice A constructor address is zero.
    error InvalidAddress();

    /// @param store The agreement store.
    /// @param lock The lock payment condition.
    /// @param service The service condition.
    /// @param escrow The escrow payment condition.
    constructor(IAgreementStore store, LockPaymentCondition lock, address service, address escrow) {
        if (
            address(store) == address(0) || address(lock) == address(0) || service == address(0)
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
        (agreementId,) = _create(seed, did, terms);
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
        uint256 fee;
        (agreementId, fee) = _create(seed, did, terms);
        // The lock condition's id is in the store's `AgreementCreated` event already.
        // slither-disable-next-line unused-return
        lockCondition.lockFor{value: msg.value}(
            agreementId, did, escrowCondition, terms.token, msg.sender, terms.receivers, terms.amounts, fee
        );
    }

    /// @notice The ids, fee and total that `consumer` would get by calling a create function now with
    ///         `seed`, `did` and `terms` (the network fee may change before then).
    function previewAgreement(bytes32 seed, address consumer, bytes32 did, Terms calldata terms)
        external
        view
        returns (Preview memory preview)
    {
        preview.serviceTimeout = _serviceTimeout(terms.serviceTimeout);
        uint256 price = PaymentTerms.price(terms.receivers, terms.amounts);
        preview.fee = lockCondition.quoteFee(price);
        preview.total = price + preview.fee;
        preview.agreementId = AgreementIds.agreementId(seed, consumer);
        ConditionSpec[] memory specs = _specs(preview.agreementId, did, consumer, terms, preview.fee, preview.serviceTimeout);
        preview.lockConditionId = _idOf(preview.agreementId, specs[0]);
        preview.serviceConditionId = _idOf(preview.agreementId, specs[1]);
        preview.escrowConditionId = _idOf(preview.agreementId, specs[2]);
    }

    function _create(bytes32 seed, bytes32 did, Terms calldata terms)
        private
        returns (bytes32 agreementId, uint256 fee)
    {
        uint32 serviceTimeout = _serviceTimeout(terms.serviceTimeout);
        fee = lockCondition.quoteFee(PaymentTerms.price(terms.receivers, terms.amounts));
        agreementId = AgreementIds.agreementId(seed, msg.sender);
        // The store derives the same id from the same seed and consumer (see {AgreementIds}).
        // slither-disable-next-line unused-return
        agreementStore.createAgreement(
            seed, msg.sender, did, _specs(agreementId, did, msg.sender, terms, fee, serviceTimeout)
        );
        emit AgreementTerms(agreementId, terms.token, terms.receivers, terms.amounts, fee, serviceTimeout);
    }

    /// @dev The three condition specs of an agreement.
    function _specs(
        bytes32 agreementId,
        bytes32 did,
        address consumer,
        Terms calldata terms,
        uint256 fee,
        uint32 serviceTimeout
    ) private view returns (ConditionSpec[] memory specs) {
        specs = new ConditionSpec[](3);
        bytes32 valueHash = PaymentTerms.lockValueHash(
            did, escrowCondition, terms.token, consumer, terms.receivers, terms.amounts, fee
        );
        specs[0] = ConditionSpec(address(lockCondition), valueHash, 0, serviceTimeout / 2);
        bytes32 lockId = AgreementIds.conditionId(agreementId, address(lockCondition), valueHash);

        valueHash = keccak256(abi.encode(did, consumer, lockId));
        specs[1] = ConditionSpec(serviceCondition, valueHash, 0, serviceTimeout);
        bytes32 serviceId = AgreementIds.conditionId(agreementId, serviceCondition, valueHash);

        bytes32[] memory releaseConditions = new bytes32[](1);
        releaseConditions[0] = serviceId;
        specs[2] = ConditionSpec(escrowCondition, keccak256(abi.encode(lockId, releaseConditions)), 0, 0);
    }

    function _idOf(bytes32 agreementId, ConditionSpec memory spec) private pure returns (bytes32) {
        return AgreementIds.conditionId(agreementId, spec.conditionContract, spec.valueHash);
    }

    function _serviceTimeout(uint32 requested) private pure returns (uint32) {
        if (requested == 0) return DEFAULT_SERVICE_TIMEOUT;
        if (requested < MIN_SERVICE_TIMEOUT || requested > MAX_SERVICE_TIMEOUT) {
            revert InvalidServiceTimeout(requested);
        }
        return requested;
    }
}
