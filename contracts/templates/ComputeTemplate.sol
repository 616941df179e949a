// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {PaymentCondition} from "../conditions/PaymentCondition.sol";
import {ComputeExecutionCondition} from "../conditions/ComputeExecutionCondition.sol";
import {ServiceTemplate} from "./ServiceTemplate.sol";

/// @title ComputeTemplate
/// @notice Sells compute on an asset where it lives, on the provider's offer: payment into escrow ->
///         compute execution -> payment released (or refunded on time out). Offers are signed in the
///         EIP-712 domain ("insitu.ComputeTemplate", "1", chain id, this contract).
contract ComputeTemplate is ServiceTemplate {
    /// @param store The agreement store.
    /// @param registry The asset registry.
    /// @param payment The payment condition.
    /// @param compute The compute execution condition.
    constructor(
        IAgreementStore store,
        IAssetRegistry registry,
        PaymentCondition payment,
        ComputeExecutionCondition compute
    ) ServiceTemplate("insitu.ComputeTemplate", store, registry, payment, address(compute)) {}
}
