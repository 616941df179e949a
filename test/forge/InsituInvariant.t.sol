// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

// The same protocol invariants as the Rust fuzzer (`cargo run --release --bin fuzz`), written as a
// Foundry invariant test, to compare the speed of both on comparable campaigns. It is a benchmark,
// not part of the test command: see docs/fuzzing.md for how to run it and the figures.
//
// There is no forge-std offline, so the few pieces needed are here: the cheatcode interface and
// the functions forge reads to find the fuzzing targets.

import {AgreementStore} from "../../contracts/core/AgreementStore.sol";
import {ConditionState} from "../../contracts/interfaces/IAgreementStore.sol";
import {IServiceTemplate} from "../../contracts/interfaces/IServiceTemplate.sol";
import {AssetRegistry} from "../../contracts/registry/AssetRegistry.sol";
import {PaymentCondition} from "../../contracts/conditions/PaymentCondition.sol";
import {AccessCondition} from "../../contracts/conditions/AccessCondition.sol";
import {ComputeExecutionCondition} from "../../contracts/conditions/ComputeExecutionCondition.sol";
import {ServiceTemplate} from "../../contracts/templates/ServiceTemplate.sol";
import {Offer} from "../../contracts/libraries/Offers.sol";
import {Payment} from "../../contracts/libraries/PaymentTerms.sol";
import {MockERC20} from "../../contracts/mocks/MockERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BlocklistToken} from "../../contracts/mocks/BlocklistToken.sol";

/// The cheatcodes used here (a subset of forge-std's `Vm`).
interface Vm {
    function warp(uint256 timestamp) external;
    function prank(address sender) external;
    function deal(address account, uint256 balance) external;
    function deployCode(string calldata artifactPath, bytes calldata constructorArgs)
        external
        returns (address deployed);
    function deployCode(string calldata artifactPath) external returns (address deployed);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function addr(uint256 privateKey) external pure returns (address keyAddr);
}

/// What forge reads from an invariant test contract to pick its targets.
abstract contract InvariantTargets {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] internal _targets;
    FuzzSelector[] internal _selectors;

    function targetContracts() public view returns (address[] memory) {
        return _targets;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _selectors;
    }
}

Vm constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

/// Actors, tokens and the suite; every fuzzed call goes through here with bounded arguments, and
/// records ghost state from what it observes. Purchases are made on offers signed by the asset's
/// keeper (EIP-712, with the keeper's key through the `sign` cheatcode).
contract Handler {
    struct Deal {
        bytes32 agreementId;
        bytes32 did;
        address consumer;
        address token;
        address[] receivers;
        uint256[] amounts;
        uint256 fee;
        uint256 total;
        bytes32 paymentId;
        bytes32 serviceId;
        address serviceCondition;
        bool paid;
        uint8 settlements;
        bool released;
        bool refunded;
    }

    AgreementStore public store;
    AssetRegistry public registry;
    PaymentCondition public payment;
    AccessCondition public access;
    ComputeExecutionCondition public compute;
    ServiceTemplate public accessTemplate;
    ServiceTemplate public computeTemplate;

    address public governor = address(0x60);
    address public feeReceiver = address(0xfee);
    address[3] public consumers = [address(0xc0), address(0xc1), address(0xc2)];
    address[3] public providers = [address(0xa0), address(0xa1), address(0xa2)];
    uint256[3] internal _keeperKeys = [uint256(0xb0), uint256(0xb1), uint256(0xb2)];
    address[3] public keepers;
    address[2] public outsiders = [address(0xd0), address(0xd1)];
    bytes32[3] public dids;
    /// Index 0 is ETH (the zero address).
    address[5] public tokens;
    address[] public holders;

    Deal[] internal _deals;
    mapping(bytes32 => bool) public seenAgreement;
    mapping(address => uint256) public lockedUnsettled;
    uint256 public ethTotal;
    uint256 public seeds;

    // Ghost flags: set when a handler call observes a broken rule (checked by the invariant).
    bool public feeMismatch;
    bool public idReused;
    bool public lateFulfil;
    bool public badPayer;

    constructor() {
        store = AgreementStore(VM.deployCode("AgreementStore.sol:AgreementStore", abi.encode(governor, uint48(0))));
        registry = AssetRegistry(VM.deployCode("AssetRegistry.sol:AssetRegistry"));
        payment = PaymentCondition(VM.deployCode("PaymentCondition.sol:PaymentCondition", abi.encode(store)));
        access = AccessCondition(
            VM.deployCode("AccessCondition.sol:AccessCondition", abi.encode(store, registry, payment))
        );
        compute = ComputeExecutionCondition(
            VM.deployCode(
                "ComputeExecutionCondition.sol:ComputeExecutionCondition", abi.encode(store, registry, payment)
            )
        );
        accessTemplate = ServiceTemplate(
            VM.deployCode("AccessTemplate.sol:AccessTemplate", abi.encode(store, registry, payment, access))
        );
        computeTemplate = ServiceTemplate(
            VM.deployCode("ComputeTemplate.sol:ComputeTemplate", abi.encode(store, registry, payment, compute))
        );
        store.proposeTemplate(address(accessTemplate));
        store.proposeTemplate(address(computeTemplate));
        // The governor holds the governor role itself (no timelock): governance is not fuzzed here.
        VM.prank(governor);
        store.approveTemplate(address(accessTemplate));
        VM.prank(governor);
        store.approveTemplate(address(computeTemplate));
        VM.prank(governor);
        payment.setNetworkFee(feeReceiver, 100);

        tokens[1] = VM.deployCode("MockERC20.sol:MockERC20", abi.encode("Plain", "PLN", uint8(18)));
        tokens[2] = VM.deployCode("NoReturnToken.sol:NoReturnToken");
        tokens[3] = VM.deployCode("FeeOnTransferToken.sol:FeeOnTransferToken", abi.encode(uint256(100)));
        tokens[4] = VM.deployCode("BlocklistToken.sol:BlocklistToken");
        for (uint256 i; i < 3; ++i) {
            keepers[i] = VM.addr(_keeperKeys[i]);
            VM.deal(consumers[i], 1e22);
            for (uint256 t = 1; t < 5; ++t) {
                MockERC20(tokens[t]).mint(consumers[i], 1e12);
                VM.prank(consumers[i]);
                // Raw call: NoReturnToken's approve returns nothing.
                (bool ok,) = tokens[t].call(abi.encodeCall(IERC20.approve, (address(payment), type(uint256).max)));
                require(ok, "approve");
            }
            address[] memory serving = new address[](1);
            serving[0] = keepers[i];
            VM.prank(providers[i]);
            dids[i] = registry.register(keccak256(abi.encode(i)), keccak256("metadata"), "ipfs://asset", serving);
        }
        for (uint256 i; i < 3; ++i) {
            holders.push(consumers[i]);
            holders.push(providers[i]);
            holders.push(keepers[i]);
        }
        holders.push(outsiders[0]);
        holders.push(outsiders[1]);
        holders.push(feeReceiver);
        holders.push(governor);
        holders.push(address(payment));
        for (uint256 i; i < holders.length; ++i) {
            ethTotal += holders[i].balance;
        }
    }

    // ---- Fuzzed actions ----

    /// Buys on an offer of the asset's keeper: in one transaction (createAgreementAndPay) or two
    /// (template createAgreement, then lock). `flaw` spoils the offer now and then: expired,
    /// altered after signing, or signed by an outsider.
    function buy(
        uint256 consumerIndex,
        uint256 tokenIndex,
        uint256 didIndex,
        uint256 amount,
        uint256 receiverIndex,
        bool compute_,
        bool twoStep,
        uint32 timeout,
        uint8 flaw
    ) external {
        address consumer = consumers[consumerIndex % 3];
        uint256 asset = didIndex % 3;
        bytes32 did = dids[asset];
        Offer memory offer = _offer(asset, tokens[tokenIndex % 5], amount, receiverIndex);
        ServiceTemplate template = compute_ ? computeTemplate : accessTemplate;
        bytes memory signature = _sign(template, offer, flaw % 8 == 1 ? 0xd0 : _keeperKeys[asset]);
        if (flaw % 8 == 2) offer.expiry = uint64(block.timestamp);
        if (flaw % 8 == 3) offer.amounts[0] += 1;
        timeout = timeout % 5 == 0 ? 0 : uint32(3600 + timeout % (7 days));
        uint256 fee = payment.quoteFee(offer.amounts[0]);
        if (fee != offer.amounts[0] * payment.networkFee().bps / 10_000) feeMismatch = true;
        bytes32 seed = keccak256(abi.encode(++seeds));
        ServiceTemplate.Preview memory p = template.previewAgreement(seed, consumer, offer, timeout);
        if (seenAgreement[p.agreementId]) idReused = true;
        uint256 value = !twoStep && offer.token == address(0) ? p.total : 0;
        uint256 before = _balance(offer.token, consumer);
        bool created;
        VM.prank(consumer);
        if (twoStep) {
            try template.createAgreement(seed, offer, signature, timeout, p.total) {
                created = true;
            } catch {}
        } else {
            try payment.createAgreementAndPay{value: value}(
                IServiceTemplate(address(template)), seed, offer, signature, timeout, p.total
            ) {
                created = true;
                if (before - _balance(offer.token, consumer) != p.total) badPayer = true;
            } catch {}
        }
        if (!created) return;
        seenAgreement[p.agreementId] = true;
        _deals.push();
        Deal storage d = _deals[_deals.length - 1];
        d.agreementId = p.agreementId;
        d.did = did;
        d.consumer = consumer;
        d.token = offer.token;
        d.receivers = offer.receivers;
        d.amounts = offer.amounts;
        d.fee = p.fee;
        d.total = p.total;
        d.paymentId = p.paymentConditionId;
        d.serviceId = p.serviceConditionId;
        d.serviceCondition = compute_ ? address(compute) : address(access);
        if (!twoStep) {
            d.paid = true;
            lockedUnsettled[offer.token] += p.total;
        }
    }

    function lockPayment(uint256 dealIndex) external {
        if (_deals.length == 0) return;
        Deal storage d = _deals[dealIndex % _deals.length];
        uint256 value = d.token == address(0) ? d.total : 0;
        uint256 before = _balance(d.token, d.consumer);
        VM.prank(d.consumer);
        try payment.lock{value: value}(d.agreementId, d.did, d.serviceCondition, _payment(d)) {
            if (before - _balance(d.token, d.consumer) != d.total) badPayer = true;
            d.paid = true;
            lockedUnsettled[d.token] += d.total;
        } catch {}
    }

    function fulfil(uint256 dealIndex, uint256 actorIndex, bool andRelease) external {
        if (_deals.length == 0) return;
        Deal storage d = _deals[dealIndex % _deals.length];
        address actor = actorIndex % 4 == 0 ? outsiders[actorIndex % 2] : keepers[actorIndex % 3];
        bool isCompute = d.serviceCondition == address(compute);
        VM.prank(actor);
        if (andRelease && isCompute) {
            try compute.fulfilAndRelease(d.agreementId, d.did, d.consumer, bytes32(dealIndex), _payment(d)) {
                _fulfilled(d);
                _released(d);
            } catch {}
        } else if (andRelease) {
            try access.fulfilAndRelease(d.agreementId, d.did, d.consumer, _payment(d)) {
                _fulfilled(d);
                _released(d);
            } catch {}
        } else if (isCompute) {
            try compute.fulfil(d.agreementId, d.did, d.consumer, d.paymentId, bytes32(dealIndex)) {
                _fulfilled(d);
            } catch {}
        } else {
            try access.fulfil(d.agreementId, d.did, d.consumer, d.paymentId) {
                _fulfilled(d);
            } catch {}
        }
    }

    function release(uint256 dealIndex, uint256 actorIndex) external {
        if (_deals.length == 0) return;
        Deal storage d = _deals[dealIndex % _deals.length];
        VM.prank(holders[actorIndex % holders.length]);
        try payment.release(d.agreementId, d.did, d.consumer, d.serviceCondition, _payment(d)) {
            _released(d);
        } catch {}
    }

    function refund(uint256 dealIndex, uint256 actorIndex) external {
        if (_deals.length == 0) return;
        Deal storage d = _deals[dealIndex % _deals.length];
        VM.prank(holders[actorIndex % holders.length]);
        try payment.refund(d.agreementId, d.did, d.consumer, d.serviceCondition, _payment(d)) {
            d.settlements += 1;
            d.refunded = true;
            lockedUnsettled[d.token] -= d.total;
        } catch {}
    }

    function abortTimedOut(uint256 dealIndex, bool service) external {
        if (_deals.length == 0) return;
        Deal storage d = _deals[dealIndex % _deals.length];
        if (service) {
            try AccessCondition(d.serviceCondition).abortTimedOut(d.serviceId) {} catch {}
        } else {
            try payment.abortTimedOut(d.paymentId) {} catch {}
        }
    }

    function withdraw(uint256 actorIndex, uint256 tokenIndex) external {
        address actor = holders[actorIndex % holders.length];
        VM.prank(actor);
        try payment.withdraw(tokens[tokenIndex % 5], actor) {} catch {}
    }

    function withdrawFees(uint256 tokenIndex) external {
        VM.prank(feeReceiver);
        try payment.withdrawFees(tokens[tokenIndex % 5], feeReceiver) {} catch {}
    }

    function revokeOffers(uint256 didIndex, uint256 actorIndex) external {
        VM.prank(actorIndex % 2 == 0 ? keepers[didIndex % 3] : outsiders[actorIndex % 2]);
        try registry.revokeOffers(dids[didIndex % 3]) {} catch {}
    }

    function setBlocked(uint256 actorIndex, bool blocked) external {
        BlocklistToken(tokens[4]).setBlocked(holders[actorIndex % holders.length], blocked);
    }

    function setNetworkFee(uint16 bps) external {
        VM.prank(governor);
        try payment.setNetworkFee(feeReceiver, bps % 1_001) {} catch {}
    }

    function warp(uint32 secondsAhead) external {
        VM.warp(block.timestamp + secondsAhead % (4 days));
    }

    /// Moves the clock onto a deal's time out, one second before or after it.
    function warpToBoundary(uint256 dealIndex, uint8 delta, bool paymentWindow) external {
        if (_deals.length == 0) return;
        Deal storage d = _deals[dealIndex % _deals.length];
        uint256 timeOut = store.getCondition(paymentWindow ? d.paymentId : d.serviceId).timeOut;
        uint256 target = timeOut + delta % 3;
        if (target >= 1 && target - 1 > block.timestamp) VM.warp(target - 1);
    }

    // ---- Helpers and ghost bookkeeping ----

    function _offer(uint256 asset, address token, uint256 amount, uint256 receiverIndex)
        private
        view
        returns (Offer memory offer)
    {
        (, uint32 epoch,) = registry.offerContext(dids[asset], keepers[asset]);
        address[] memory receivers = new address[](1);
        receivers[0] = receiverIndex % 2 == 0 ? providers[receiverIndex % 3] : keepers[receiverIndex % 3];
        uint256[] memory amounts = new uint256[](1);
        amounts[0] = 1 + amount % 1e9;
        offer = Offer({
            did: dids[asset],
            checksum: keccak256("metadata"),
            provider: keepers[asset],
            token: token,
            receivers: receivers,
            amounts: amounts,
            minServiceTimeout: 1 hours,
            maxServiceTimeout: 8 days,
            expiry: uint64(block.timestamp + 1 days),
            epoch: epoch
        });
    }

    function _sign(ServiceTemplate template, Offer memory offer, uint256 key) private view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = VM.sign(key, template.offerDigest(offer));
        return abi.encodePacked(r, s, v);
    }

    function _payment(Deal storage d) private view returns (Payment memory) {
        return Payment(d.token, d.receivers, d.amounts, d.fee);
    }

    function _fulfilled(Deal storage d) private {
        if (block.timestamp >= store.getCondition(d.serviceId).timeOut) lateFulfil = true;
    }

    function _released(Deal storage d) private {
        d.settlements += 1;
        d.released = true;
        lockedUnsettled[d.token] -= d.total;
    }

    function _balance(address token, address account) internal view returns (uint256) {
        return token == address(0) ? account.balance : MockERC20(token).balanceOf(account);
    }

    // ---- Views for the invariants ----

    function dealCount() external view returns (uint256) {
        return _deals.length;
    }

    function deal(uint256 i) external view returns (Deal memory) {
        return _deals[i];
    }

    function holderCount() external view returns (uint256) {
        return holders.length;
    }

    function tokenAt(uint256 i) external view returns (address) {
        return tokens[i];
    }

    function selectors() external pure returns (bytes4[] memory s) {
        s = new bytes4[](13);
        s[0] = this.buy.selector;
        s[1] = this.lockPayment.selector;
        s[2] = this.fulfil.selector;
        s[3] = this.release.selector;
        s[4] = this.refund.selector;
        s[5] = this.abortTimedOut.selector;
        s[6] = this.withdraw.selector;
        s[7] = this.withdrawFees.selector;
        s[8] = this.revokeOffers.selector;
        s[9] = this.setBlocked.selector;
        s[10] = this.setNetworkFee.selector;
        s[11] = this.warp.selector;
        s[12] = this.warpToBoundary.selector;
    }
}

/// The invariant test: all invariants in one function, so one campaign checks them all after
/// every call, like the Rust fuzzer does.
contract InsituInvariantTest is InvariantTargets {
    bool public constant IS_TEST = true;

    Handler internal handler;

    function setUp() public {
        handler = new Handler();
        _targets.push(address(handler));
        _selectors.push(FuzzSelector(address(handler), handler.selectors()));
    }

    function invariant_protocol() public view {
        AgreementStore store = handler.store();
        PaymentCondition payment = handler.payment();
        // fee_is_configured_bps, ids_unique, time_windows_respected, only_payer_locks.
        require(!handler.feeMismatch(), "fee_is_configured_bps");
        require(!handler.idReused(), "ids_unique");
        require(!handler.lateFulfil(), "time_windows_respected");
        require(!handler.badPayer(), "only_payer_locks");
        uint256 deals = handler.dealCount();
        for (uint256 i; i < deals; ++i) {
            Handler.Deal memory d = handler.deal(i);
            ConditionState paymentState = store.conditionState(d.paymentId);
            ConditionState serviceState = store.conditionState(d.serviceId);
            // settlement_exactly_once (per payment)
            require(d.settlements <= 1, "settlement_exactly_once");
            require((paymentState == ConditionState.Released) == d.released, "settlement_exactly_once: release");
            require((paymentState == ConditionState.Refunded) == d.refunded, "settlement_exactly_once: refund");
            // release_implies_fulfilled / refund_implies_aborted
            if (d.released) require(serviceState == ConditionState.Fulfilled, "release_implies_fulfilled");
            if (d.refunded) require(serviceState == ConditionState.Aborted, "refund_implies_aborted");
            // service_implies_lock: a served agreement was paid.
            if (serviceState == ConditionState.Fulfilled) {
                require(
                    paymentState == ConditionState.Fulfilled || paymentState == ConditionState.Released,
                    "service_implies_lock"
                );
            }
            // states_only_move_forward: a paid deal's payment stays paid (or settled).
            if (d.paid) {
                require(
                    paymentState == ConditionState.Fulfilled || paymentState == ConditionState.Released
                        || paymentState == ConditionState.Refunded,
                    "states_only_move_forward"
                );
            }
        }
        // escrow_solvency and conservation, per token.
        uint256 holderCount = handler.holderCount();
        for (uint256 t; t < 5; ++t) {
            address token = handler.tokenAt(t);
            uint256 held =
                token == address(0) ? address(payment).balance : MockERC20(token).balanceOf(address(payment));
            uint256 owed = handler.lockedUnsettled(token) + payment.totalCredits(token) + payment.accruedFees(token);
            require(held >= owed, "escrow_solvency");
            uint256 sum;
            for (uint256 h; h < holderCount; ++h) {
                address holder = handler.holders(h);
                sum += token == address(0) ? holder.balance : MockERC20(token).balanceOf(holder);
            }
            if (token == address(0)) {
                require(sum == handler.ethTotal(), "conservation: ETH");
            } else if (t != 2) {
                require(sum == MockERC20(token).totalSupply(), "conservation");
            }
        }
    }
}
