// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {IAssetRegistry} from "../interfaces/IAssetRegistry.sol";
import {PaymentCondition} from "../conditions/PaymentCondition.sol";
import {AccessCondition} from "../conditions/AccessCondition.sol";
import {ServiceTemplate} from "./ServiceTemplate.sol";

/// @title AccessTemplate
/// @notice Sells access to an asset on the provider's offer: payment into escrow -> access -> payment
///         released (or refunded on time out). Offers are signed in the EIP-712 domain
///         ("insitu.AccessTemplate", "1", chain id, this contract).
contract AccessTemplate is ServiceTemplate {
    /// @param store The agreement store.
    /// @param registry The asset registry.
    /// @param payment The payment condition.
    /// @param access The access condition.
    constructor(IAgreementStore store, IAssetRegistry registry, PaymentCondition payment, AccessCondition access)
        ServiceTemplate("insitu.AccessTemplate", store, registry, payment, address(access))
    {}
}
