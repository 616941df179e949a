// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IAgreementStore, ConditionSpec} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {IServiceTemplate} from "../interfaces/IServiceTemplate.sol";
import {AgreementIds} from "../libraries/AgreementIds.sol";
import {Offer, Offers} from "../libraries/Offers.sol";
import {PaymentTerms} from "../libraries/PaymentTerms.sol";
import {PaymentCondition} from "../conditions/PaymentCondition.sol";

/// @title ServiceTemplate
/// @notice Base of the templates that sell a service on an asset, on the provider's signed offer:
///         payment into escrow -> service -> payment released (or refunded on time out).
/// @dev Conditions created for every agreement, in this order:
///      0. payment: {PaymentTerms-valueHash}`(did, consumer, serviceCondition, token, receivers,
///         amounts, fee)`, times out after half the service time out (the payment window);
///      1. service (access or compute): `keccak256(abi.encode(did, consumer, paymentConditionId))`,
///         times out after the service time out, which is always finite, so the consumer always has
///         a refund path.
///      The price is the provider's: an agreement is created only on an {Offer} signed (ECDSA or
///      ERC-1271) by an account that may serve the asset now, for the asset's current offer epoch
///      (bumped by revocation, metadata update and transfer), before its expiry; all of it is checked
///      before any token moves. The agreement id binds the consumer's seed and the payment condition
///      (see {AgreementIds}).
///      The network fee in force at creation is fixed for the agreement's whole life.
abstract contract ServiceTemplate is IServiceTemplate, EIP712 {
    /// @notice Basis points in one whole.
    uint16 private constant BPS = 10_000;
    /// @notice Shortest service time out an offer may allow.
    uint32 public constant MIN_SERVICE_TIMEOUT = 1 hours;
    /// @notice Longest service time out an offer may allow.
    uint32 public constant MAX_SERVICE_TIMEOUT = 90 days;

    /// @notice The ids, fee and time out an agreement would get; see {previewAgreement}.
    struct Preview {
        bytes32 agreementId;
        bytes32 paymentConditionId;
        bytes32 serviceConditionId;
        uint256 fee;
        uint256 total;
        uint32 serviceTimeout;
    }

    /// @notice The agreement store.
    IAgreementStore public immutable agreementStore;
    /// @notice The asset registry (who may sign offers, the asset's offer epoch).
    IAssetRegistry public immutable assetRegistry;
    /// @notice The payment condition (escrow).
    PaymentCondition public immutable paymentCondition;
    /// @notice The service condition (access or compute).
    address public immutable serviceCondition;

    /// @notice The terms of a new agreement: with the store's `AgreementCreated` (asset, consumer,
    ///         condition ids in the order payment, service) they are everything a consumer, provider or
    ///         keeper needs to serve, release or refund it.
    /// @param agreementId The agreement.
    /// @param provider The account whose offer was accepted.
    /// @param token The payment token (zero: ETH).
    /// @param receivers Who is paid on release.
    /// @param amounts How much each receiver is paid.
    /// @param fee The network fee, accrued on release.
    /// @param serviceTimeout Seconds from creation the provider has to serve.
    /// @param checksum The metadata checksum named in the offer (as signed by the provider; not read
    ///        from the registry: a client compares it with `AssetRegistry.getAsset` before paying).
    event AgreementTerms(
        bytes32 indexed agreementId,
        address indexed provider,
        address token,
        address[] receivers,
        uint256[] amounts,
        uint256 fee,
        uint32 serviceTimeout,
        bytes32 checksum
    );

    /// @notice The offer's expiry has passed.
    error OfferExpired(uint64 expiry);
    /// @notice The offer's asset is not registered.
    error AssetNotRegistered(bytes32 did);
    /// @notice The offer's signer may not serve the asset (anymore).
    error OfferSignerNotServer(bytes32 did, address provider);
    /// @notice The asset's offers were revoked (explicitly, by a metadata update or by a transfer)
    ///         since the offer was made.
    error OfferRevoked(uint32 epoch, uint32 current);
    /// @notice The signature is not the provider's over this offer (or the offer was altered).
    error InvalidOfferSignature(address provider);
    /// @notice The offer's time-out bounds are empty or outside [MIN_SERVICE_TIMEOUT, MAX_SERVICE_TIMEOUT].
    error InvalidOfferTimeouts(uint32 minServiceTimeout, uint32 maxServiceTimeout);
    /// @notice The chosen service time out is outside the offer's bounds.
    error InvalidServiceTimeout(uint32 serviceTimeout, uint32 minServiceTimeout, uint32 maxServiceTimeout);
    /// @notice The agreement's total is more than the most the consumer accepted to pay.
    error TotalAboveMaximum(uint256 total, uint256 maxTotal);
    /// @notice Only the payment condition may create agreements on behalf of a consumer.
    error NotPaymentCondition(address caller);
    /// @notice A constructor address is zero.
    error InvalidAddress();

    /// @param name EIP-712 domain name of the template's offers.
    /// @param store The agreement store.
    /// @param registry The asset registry.
    /// @param payment The payment condition.
    /// @param service The service condition.
    constructor(
        string memory name,
        IAgreementStore store,
        IAssetRegistry registry,
        PaymentCondition payment,
        address service
    ) EIP712(name, "1") {
        if (
            address(store) == address(0) || address(registry) == address(0) || address(payment) == address(0)
                || service == address(0)
        ) revert InvalidAddress();
        agreementStore = store;
        assetRegistry = registry;
        paymentCondition = payment;
        serviceCondition = service;
    }

    /// @notice Creates an agreement for the caller on `offer`; the caller pays later with
    ///         {PaymentCondition-lock}, within the payment window. To create and pay in one
    ///         transaction, call {PaymentCondition-createAgreementAndPay} instead.
    /// @param seed Caller-chosen seed of the agreement id; buying the same offer again needs another.
    /// @param offer The provider's offer.
    /// @param signature The provider's signature of `offer`.
    /// @param serviceTimeout Seconds the provider has to serve, within the offer's bounds (0: longest).
    /// @param maxTotal The most the caller accepts to pay in all (price plus network fee).
    /// @return agreementId The new agreement.
    function createAgreement(
        bytes32 seed,
        Offer calldata offer,
        bytes calldata signature,
        uint32 serviceTimeout,
        uint256 maxTotal
    ) external returns (bytes32 agreementId) {
        uint256 price = _price(offer);
        uint256 fee = paymentCondition.quoteFee(price);
        if (price + fee > maxTotal) revert TotalAboveMaximum(price + fee, maxTotal);
        agreementId = _create(seed, msg.sender, offer, signature, serviceTimeout, fee);
    }

    /// @inheritdoc IServiceTemplate
    function createAgreementFor(
        address consumer,
        bytes32 seed,
        Offer calldata offer,
        bytes calldata signature,
        uint32 serviceTimeout,
        uint16 feeBps
    ) external returns (bytes32 agreementId, address service) {
        if (msg.sender != address(paymentCondition)) revert NotPaymentCondition(msg.sender);
        uint256 fee = _price(offer) * feeBps / BPS;
        agreementId = _create(seed, consumer, offer, signature, serviceTimeout, fee);
        service = serviceCondition;
    }

    /// @notice Reverts with the reason `offer` cannot be bought now (expired, unregistered asset,
    ///         signer not a server, stale, revoked, bad signature, bad bounds); returns otherwise.
    /// @param offer The provider's offer.
    /// @param signature The provider's signature of `offer`.
    function checkOffer(Offer calldata offer, bytes calldata signature) external view {
        _checkOffer(offer, signature);
    }

    /// @notice The EIP-712 digest a provider signs for `offer`.
    function offerDigest(Offer calldata offer) public view returns (bytes32) {
        return _hashTypedDataV4(Offers.structHash(offer));
    }

    /// @notice The ids, fee and total that `consumer` would get by buying `offer` now (the network fee
    ///         may change before then; the consumer's `maxTotal` guards against that).
    /// @param seed The consumer's seed.
    /// @param consumer The buyer.
    /// @param offer The provider's offer (not verified here: see {checkOffer}).
    /// @param serviceTimeout The time out the consumer would choose (0: the offer's longest).
    function previewAgreement(bytes32 seed, address consumer, Offer calldata offer, uint32 serviceTimeout)
        external
        view
        returns (Preview memory preview)
    {
        preview.serviceTimeout = _serviceTimeout(serviceTimeout, offer);
        uint256 price = _price(offer);
        preview.fee = paymentCondition.quoteFee(price);
        preview.total = price + preview.fee;
        bytes32 paymentValueHash;
        (preview.agreementId, paymentValueHash) = _ids(seed, consumer, offer, preview.fee);
        ConditionSpec[] memory specs = _specs(preview.agreementId, paymentValueHash, consumer, offer, preview.serviceTimeout);
        preview.paymentConditionId =
            AgreementIds.conditionId(preview.agreementId, specs[0].conditionContract, specs[0].valueHash);
        preview.serviceConditionId =
            AgreementIds.conditionId(preview.agreementId, specs[1].conditionContract, specs[1].valueHash);
    }

    function _create(
        bytes32 seed,
        address consumer,
        Offer calldata offer,
        bytes calldata signature,
        uint32 requestedTimeout,
        uint256 fee
    ) private returns (bytes32 agreementId) {
        _checkOffer(offer, signature);
        uint32 serviceTimeout = _serviceTimeout(requestedTimeout, offer);
        bytes32 paymentValueHash;
        (agreementId, paymentValueHash) = _ids(seed, consumer, offer, fee);
        // The store derives the same id from the same seed, consumer and first condition.
        // slither-disable-next-line unused-return
        agreementStore.createAgreement(
            seed, consumer, offer.did, _specs(agreementId, paymentValueHash, consumer, offer, serviceTimeout)
        );
        emit AgreementTerms(
            agreementId, offer.provider, offer.token, offer.receivers, offer.amounts, fee, serviceTimeout, offer.checksum
        );
    }

    /// @dev The agreement id and the payment condition's value hash.
    function _ids(bytes32 seed, address consumer, Offer calldata offer, uint256 fee)
        private
        view
        returns (bytes32 agreementId, bytes32 paymentValueHash)
    {
        paymentValueHash = PaymentTerms.valueHash(
            offer.did, consumer, serviceCondition, offer.token, offer.receivers, offer.amounts, fee
        );
        agreementId = AgreementIds.agreementId(seed, consumer, address(paymentCondition), paymentValueHash);
    }

    function _checkOffer(Offer calldata offer, bytes calldata signature) private view {
        if (block.timestamp >= offer.expiry) revert OfferExpired(offer.expiry);
        uint32 minTimeout = offer.minServiceTimeout;
        uint32 maxTimeout = offer.maxServiceTimeout;
        if (minTimeout < MIN_SERVICE_TIMEOUT || maxTimeout > MAX_SERVICE_TIMEOUT || minTimeout > maxTimeout) {
            revert InvalidOfferTimeouts(minTimeout, maxTimeout);
        }
        (bool registered, uint32 epoch, bool canServe) = assetRegistry.offerContext(offer.did, offer.provider);
        if (!registered) revert AssetNotRegistered(offer.did);
        if (!canServe) revert OfferSignerNotServer(offer.did, offer.provider);
        if (epoch != offer.epoch) revert OfferRevoked(offer.epoch, epoch);
        bytes32 digest = offerDigest(offer);
        // ECDSA first: an EOA (or an EIP-7702 account) signs with its key, and its account is never
        // touched; a contract account cannot produce an ECDSA signature of its own address. The
        // error's detail (third value) is not needed: any failure falls back to ERC-1271.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
        if (error != ECDSA.RecoverError.NoError || recovered != offer.provider) {
            if (!SignatureChecker.isValidERC1271SignatureNow(offer.provider, digest, signature)) {
                revert InvalidOfferSignature(offer.provider);
            }
        }
    }

    /// @dev The offer's price, with its split validated; the protocol contracts this template knows
    ///      are refused as receivers.
    function _price(Offer calldata offer) private view returns (uint256) {
        address[5] memory refused = [
            address(paymentCondition), address(agreementStore), serviceCondition, address(this), address(assetRegistry)
        ];
        return PaymentTerms.price(offer.receivers, offer.amounts, refused);
    }

    /// @dev The two condition specs of an agreement.
    function _specs(
        bytes32 agreementId,
        bytes32 paymentValueHash,
        address consumer,
        Offer calldata offer,
        uint32 serviceTimeout
    ) private view returns (ConditionSpec[] memory specs) {
        specs = new ConditionSpec[](2);
        specs[0] = ConditionSpec(address(paymentCondition), paymentValueHash, 0, serviceTimeout / 2);
        bytes32 paymentId = AgreementIds.conditionId(agreementId, address(paymentCondition), paymentValueHash);
        specs[1] = ConditionSpec(
            serviceCondition, PaymentTerms.serviceValueHash(offer.did, consumer, paymentId), 0, serviceTimeout
        );
    }

    function _serviceTimeout(uint32 requested, Offer calldata offer) private pure returns (uint32) {
        if (requested == 0) return offer.maxServiceTimeout;
        if (requested < offer.minServiceTimeout || requested > offer.maxServiceTimeout) {
            revert InvalidServiceTimeout(requested, offer.minServiceTimeout, offer.maxServiceTimeout);
        }
        return requested;
    }
}
