// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {LockPaymentCondition} from "../conditions/LockPaymentCondition.sol";
import {AccessCondition} from "../conditions/AccessCondition.sol";
import {ServiceTemplate} from "./ServiceTemplate.sol";

/// @title AccessTemplate
/// @notice Sells access to an asset: lock payment -> access -> escrow release (or refund on time out).
contract AccessTemplate is ServiceTemplate {
    /// @param store The agreement store.
    /// @param lock The lock payment condition.
    /// @param access The access condition.
    /// @param escrow The escrow payment condition.
    constructor(IAgreementStore store, LockPaymentCondition lock, AccessCondition access, address escrow)
        ServiceTemplate(store, lock, address(access), escrow)
    {}
}
