// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Offer} from "../libraries/Offers.sol";

/// @title IServiceTemplate
/// @notice What the payment condition needs of a template to create an agreement and take its payment
///         in one transaction.
interface IServiceTemplate {
    /// @notice Creates an agreement for `consumer` on a provider's signed `offer`. Only the payment
    ///         condition may call, on behalf of its own caller, whose payment it then takes.
    /// @param consumer The consumer (the payment condition's caller).
    /// @param seed The consumer's seed for the agreement id.
    /// @param offer The provider's offer.
    /// @param signature The provider's signature of `offer`.
    /// @param serviceTimeout The service time out the consumer chose (0: the offer's longest).
    /// @param feeBps The network fee rate in force, in basis points; the agreement's fee is
    ///        `price * feeBps / 10000`, rounded down.
    /// @return agreementId The new agreement.
    /// @return service The condition contract that releases the payment.
    function createAgreementFor(
        address consumer,
        bytes32 seed,
        Offer calldata offer,
        bytes calldata signature,
        uint32 serviceTimeout,
        uint16 feeBps
    ) external returns (bytes32 agreementId, address service);
}
