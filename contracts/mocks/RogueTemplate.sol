// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore, ConditionSpec} from "../interfaces/IAgreementStore.sol";
import {IServiceTemplate} from "../interfaces/IServiceTemplate.sol";
import {Offer} from "../libraries/Offers.sol";

/// @title RogueTemplate
/// @notice Test template that breaks every rule a template could break, to show that the payment
///         condition's guarantees do not depend on templates: it creates agreements for any consumer
///         with any conditions (several payments on one service, payments naming other payers,
///         services that do not exist), calls any contract as itself, and answers the payment
///         condition's `createAgreementFor` with whatever it was told to. Tests approve it as a
///         compromised governor would. Never approve it in production.
contract RogueTemplate is IServiceTemplate {
    /// @notice The agreement store.
    IAgreementStore public immutable agreementStore;

    bytes32 private _agreementId;
    address private _service;
    ConditionSpec[] private _specs;
    address private _specsConsumer;
    bytes32 private _specsDid;

    /// @param store The agreement store.
    constructor(IAgreementStore store) {
        agreementStore = store;
    }

    /// @notice Creates an agreement for any `consumer` with any `conditions`.
    function createFor(bytes32 seed, address consumer, bytes32 did, ConditionSpec[] calldata conditions)
        external
        returns (bytes32 agreementId)
    {
        return agreementStore.createAgreement(seed, consumer, did, conditions);
    }

    /// @notice Calls `target` with `data` and `value` as this template, bubbling up any revert.
    function execute(address target, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory result) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
        return result;
    }

    /// @notice Sets what {createAgreementFor} answers; when `specs` is not empty, it also creates an
    ///         agreement of `consumer` with them first (and answers that agreement's id when
    ///         `agreementId` is zero).
    function script(
        bytes32 agreementId,
        address service,
        address consumer,
        bytes32 did,
        ConditionSpec[] calldata specs
    ) external {
        _agreementId = agreementId;
        _service = service;
        _specsConsumer = consumer;
        _specsDid = did;
        delete _specs;
        for (uint256 i; i < specs.length; ++i) {
            _specs.push(specs[i]);
        }
    }

    /// @inheritdoc IServiceTemplate
    function createAgreementFor(address, bytes32, Offer calldata, bytes calldata, uint32, uint16)
        external
        returns (bytes32 agreementId, address service)
    {
        agreementId = _agreementId;
        if (_specs.length != 0) {
            bytes32 created = agreementStore.createAgreement(bytes32(0), _specsConsumer, _specsDid, _specs);
            if (agreementId == bytes32(0)) agreementId = created;
        }
        return (agreementId, _service);
    }
}
