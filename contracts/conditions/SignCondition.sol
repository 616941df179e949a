// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {Condition} from "./Condition.sol";

/// @title SignCondition
/// @notice Fulfilled by an EIP-712 signature of an agreed signer over an agreed message.
/// @dev Value hash: `keccak256(abi.encode(signer, message))`. The signed struct is
///      `SignConditionFulfilment(bytes32 agreementId,bytes32 message)` in the domain of this contract
///      (name, version, chain id, address), so a signature is valid for one agreement on one chain and
///      one contract only; it can be used once because the condition changes state once, and never
///      after the condition's time out (its deadline). ERC-1271 contract signers are supported.
contract SignCondition is Condition, EIP712 {
    /// @notice EIP-712 type hash of the signed struct.
    bytes32 public constant FULFILMENT_TYPEHASH = keccak256("SignConditionFulfilment(bytes32 agreementId,bytes32 message)");

    /// @notice `signer` signed `message` for `agreementId`.
    event MessageSigned(bytes32 indexed agreementId, bytes32 indexed conditionId, address indexed signer, bytes32 message);

    /// @notice The signature is not `signer`'s over the fulfilment struct.
    error InvalidSignature(address signer);

    /// @param store The agreement store.
    constructor(IAgreementStore store) Condition(store) EIP712("insitu.SignCondition", "1") {}

    /// @notice Value hash of a sign condition.
    /// @param signer The account whose signature fulfils the condition.
    /// @param message The agreed message (e.g. a hash of a delivery receipt).
    function hashValues(address signer, bytes32 message) public pure returns (bytes32) {
        return keccak256(abi.encode(signer, message));
    }

    /// @notice The EIP-712 digest `signer` must sign to fulfil the condition of `agreementId` on `message`.
    function fulfilmentDigest(bytes32 agreementId, bytes32 message) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(FULFILMENT_TYPEHASH, agreementId, message)));
    }

    /// @notice Fulfils the condition with `signer`'s signature. Anyone may submit it.
    /// @param agreementId The agreement.
    /// @param signer The agreed signer.
    /// @param message The agreed message.
    /// @param signature A 65-byte ECDSA signature (r, s, v) for an account, or ERC-1271 signature
    ///        data for a contract signer. Compact 64-byte (EIP-2098) signatures are not accepted.
    /// @return conditionId The fulfilled condition.
    function fulfil(bytes32 agreementId, address signer, bytes32 message, bytes calldata signature)
        external
        returns (bytes32 conditionId)
    {
        if (!SignatureChecker.isValidSignatureNow(signer, fulfilmentDigest(agreementId, message), signature)) {
            revert InvalidSignature(signer);
        }
        conditionId = conditionIdOf(agreementId, hashValues(signer, message));
        agreementStore.fulfil(conditionId);
        emit MessageSigned(agreementId, conditionId, signer, message);
    }
}
