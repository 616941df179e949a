// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgreementStore} from "../interfaces/IAgreementStore.sol";
import {LockPaymentCondition} from "../conditions/LockPaymentCondition.sol";
import {ComputeExecutionCondition} from "../conditions/ComputeExecutionCondition.sol";
import {ServiceTemplate} from "./ServiceTemplate.sol";

/// @title ComputeTemplate
/// @notice Sells compute on an asset where it lives: lock payment -> compute execution -> escrow
///         release (or refund on time out).
contract ComputeTemplate is ServiceTemplate {
    /// @param store The agreement store.
    /// @param lock The lock payment condition.
    /// @param compute The compute execution condition.
    /// @param escrow The escrow payment condition.
    constructor(IAgreementStore store, LockPaymentCondition lock, ComputeExecutionCondition compute, address escrow)
        ServiceTemplate(store, lock, address(compute), escrow)
    {}
}
