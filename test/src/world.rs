//! The deployed insitu suite on a [`Chain`], with named parties and helpers for the steps of an
//! agreement's life. Every contract test starts from a [`World`].

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::SignerSync;
use insitu_bindings::deployment::{self, DeployOptions, Governance, PlannedTx, SuiteAddresses};
use insitu_bindings::offers::{self, Offer, Payment};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, ComputeExecutionCondition, MockERC20,
    PaymentCondition, ServiceTemplate,
};

use alloy::sol_types::SolCall;

use crate::harness::{Chain, GasProfile, Receipt, Tx, TxError};

/// Deploys and wires the whole suite from `deployer`, executing the same
/// [`deployment::plan`] as the deploy script does on a real chain, and checks that every contract
/// landed at its planned address.
///
/// # Errors
///
/// The first transaction of the plan that fails.
///
/// # Panics
///
/// If a contract is created at another address than planned (a harness or plan defect).
pub fn deploy_suite(
    chain: &mut Chain,
    deployer: Address,
    options: DeployOptions,
) -> Result<SuiteAddresses, TxError> {
    let plan = deployment::plan(deployer, chain.nonce(deployer), options);
    for planned in plan.transactions {
        let tx = match planned.kind {
            alloy::primitives::TxKind::Create => Tx::create(deployer, planned.input),
            alloy::primitives::TxKind::Call(to) => Tx::call(deployer, to, planned.input),
        };
        let receipt = chain.send(tx)?;
        assert_eq!(
            receipt.contract_address, planned.creates,
            "{} landed at another address than planned",
            planned.label
        );
    }
    Ok(plan.addresses)
}

/// Which service an agreement sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Access to the asset (access template, access condition).
    Access,
    /// Compute on the asset (compute template, compute execution condition).
    Compute,
}

/// Everything needed to act on one agreement, read from its `AgreementCreated` and
/// `AgreementTerms` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deal {
    /// The service sold.
    pub service: Service,
    /// The template that created it.
    pub template: Address,
    /// The service condition contract (access or compute) that releases its payment.
    pub service_condition: Address,
    /// Agreement id.
    pub agreement_id: B256,
    /// Asset id.
    pub did: B256,
    /// Consumer (payer).
    pub consumer: Address,
    /// The account whose offer was bought.
    pub provider: Address,
    /// Payment token (zero: ETH).
    pub token: Address,
    /// Receivers.
    pub receivers: Vec<Address>,
    /// Amounts, in the order of `receivers`.
    pub amounts: Vec<U256>,
    /// Network fee, accrued in escrow on release.
    pub fee: U256,
    /// Service time out, in seconds from creation.
    pub service_timeout: u32,
    /// Payment condition id.
    pub payment_id: B256,
    /// Access or compute condition id.
    pub service_id: B256,
}

impl Deal {
    /// The deal's payment terms.
    pub fn payment(&self) -> Payment {
        Payment {
            token: self.token,
            receivers: self.receivers.clone(),
            amounts: self.amounts.clone(),
            fee: self.fee,
        }
    }

    /// The payment condition's `release` call for this deal.
    pub fn release_call(&self) -> PaymentCondition::releaseCall {
        PaymentCondition::releaseCall {
            agreementId: self.agreement_id,
            did: self.did,
            payer: self.consumer,
            service: self.service_condition,
            payment: self.payment(),
        }
    }

    /// The payment condition's `refund` call for this deal.
    pub fn refund_call(&self) -> PaymentCondition::refundCall {
        PaymentCondition::refundCall {
            agreementId: self.agreement_id,
            did: self.did,
            payer: self.consumer,
            service: self.service_condition,
            payment: self.payment(),
        }
    }

    /// What the consumer paid: the amounts plus the fee.
    pub fn total(&self) -> U256 {
        self.amounts.iter().copied().sum::<U256>() + self.fee
    }
}

/// An offer and its signature, ready to be bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOffer {
    /// The offer.
    pub offer: Offer,
    /// The signature of `offer.provider` (or of whoever signed it in a test).
    pub signature: Bytes,
}

/// Network fee used by [`World::with_fee`]: 1%.
pub const FEE_BPS: u16 = 100;
/// Tokens minted to the consumer by [`World::new`].
pub const CONSUMER_TOKENS: u64 = 1_000_000_000;
/// Longest service time out of the world's default offers: 3 days.
pub const OFFER_MAX_TIMEOUT: u32 = 3 * 24 * 3600;
/// Shortest service time out of the world's default offers: 1 hour.
pub const OFFER_MIN_TIMEOUT: u32 = 3600;
/// How long the world's default offers stay valid: 1 day.
pub const OFFER_VALIDITY: u64 = 24 * 3600;
/// Checksum of the metadata document of the world's assets.
pub fn metadata_checksum() -> B256 {
    keccak256(b"metadata")
}

/// A chain with the suite deployed, a standard ERC20, and named parties:
///
/// - `governor` deployed the suite and is the proposer of its governance timelock (delay 0): it
///   governs through [`World::govern`];
/// - `provider` owns the asset `did`, and `keeper` is in its provider set and signs its offers;
/// - `consumer` holds [`CONSUMER_TOKENS`] of `token` and approved the payment condition for all;
/// - `co_provider` and `fee_receiver` receive payments; `outsider` has no role at all.
#[derive(Debug)]
pub struct World {
    /// The chain.
    pub chain: Chain,
    /// The suite's addresses.
    pub suite: SuiteAddresses,
    /// Deployer, and proposer of the governance timelock.
    pub governor: Address,
    /// The governance timelock, which holds the governor and admin roles.
    pub timelock: Address,
    /// Asset owner.
    pub provider: Address,
    /// Account serving the asset for the provider.
    pub keeper: Address,
    /// Buyer.
    pub consumer: Address,
    /// A second receiver of payments.
    pub co_provider: Address,
    /// Network fee receiver (only receives when a fee is set).
    pub fee_receiver: Address,
    /// An account with no role.
    pub outsider: Address,
    /// A standard OpenZeppelin ERC20.
    pub token: Address,
    /// An asset registered by `provider`, served by `keeper`.
    pub did: B256,
    /// When set, every transaction sent through the world's helpers is first profiled; the
    /// profiles are appended here with the function's signature.
    pub profiles: Option<Vec<(&'static str, GasProfile)>>,
    seeds: u64,
    governance_salt: u64,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A world without network fee.
    ///
    /// # Panics
    ///
    /// If deploying the suite or the token fails (a contract defect).
    pub fn new() -> Self {
        Self::build(None)
    }

    /// A world whose network fee is [`FEE_BPS`], paid to `fee_receiver`.
    ///
    /// # Panics
    ///
    /// If deploying the suite or the token fails.
    pub fn with_fee() -> Self {
        Self::build(Some(FEE_BPS))
    }

    fn build(fee_bps: Option<u16>) -> Self {
        let mut chain = Chain::new();
        let governor = chain.account_named("governor");
        let provider = chain.account_named("provider");
        let keeper = chain.account_named("keeper");
        let consumer = chain.account_named("consumer");
        let co_provider = chain.account_named("co_provider");
        let fee_receiver = chain.account_named("fee_receiver");
        let outsider = chain.account_named("outsider");
        let options = DeployOptions {
            governance: Governance::Timelock {
                proposer: governor,
                delay: 0,
            },
            admin_transfer_delay: 0,
            network_fee: fee_bps.map(|bps| (fee_receiver, bps)),
        };
        let suite = deploy_suite(&mut chain, governor, options).expect("deploy the suite");
        let timelock = suite.governance_timelock.expect("a timelock");
        chain.label(timelock, "timelock");
        let token = chain
            .deploy(
                governor,
                &MockERC20::BYTECODE,
                &MockERC20::constructorCall {
                    name_: "Test Token".into(),
                    symbol_: "TT".into(),
                    decimals_: 18,
                },
            )
            .expect("deploy token");
        chain.label(token, "token");
        let mut world = Self {
            chain,
            suite,
            governor,
            timelock,
            provider,
            keeper,
            consumer,
            co_provider,
            fee_receiver,
            outsider,
            token,
            did: B256::ZERO,
            profiles: None,
            seeds: 0,
            governance_salt: 0,
        };
        world.mint(token, consumer, U256::from(CONSUMER_TOKENS));
        world.approve(token, consumer, world.suite.payment, U256::MAX);
        world.did = world.register_asset(provider, &[keeper]);
        world
    }

    /// Sends `call` from `from` to `to` with `value` wei, profiling it first when
    /// [`World::profiles`] is set.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn transact<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: &C,
        value: U256,
    ) -> Result<Receipt<C::Return>, TxError> {
        // A transaction that fails to profile fails the same way when sent, just below.
        if let Some(profiles) = self.profiles.as_mut()
            && let Ok((_, profile)) = self
                .chain
                .profile(Tx::call(from, to, call.abi_encode()).value(value))
        {
            profiles.push((C::SIGNATURE, profile));
        }
        self.chain.transact_value(from, to, call, value)
    }

    /// Carries out governance calls (`(target, calldata)`) through the timelock, as the governor
    /// does: schedules them as one batch and executes it (the world's timelock has no delay).
    /// Returns the receipt of the execution.
    ///
    /// # Errors
    ///
    /// The revert of the execution, which carries the revert of the first failing call.
    ///
    /// # Panics
    ///
    /// If scheduling fails.
    pub fn govern(&mut self, calls: &[(Address, Vec<u8>)]) -> Result<Receipt<Bytes>, TxError> {
        let planned: Vec<PlannedTx> = calls
            .iter()
            .map(|(to, input)| PlannedTx {
                label: "governance call",
                kind: alloy::primitives::TxKind::Call(*to),
                input: input.clone().into(),
                creates: None,
            })
            .collect();
        let mut batch = deployment::timelock_batch(self.timelock, &planned, 0);
        // Each batch gets its own salt, so the same calls can be governed twice.
        self.governance_salt += 1;
        let salt = keccak256(self.governance_salt.to_be_bytes());
        for tx in &mut batch {
            tx.input = resalt(&tx.input, salt);
        }
        let [schedule, execute] = &batch[..] else {
            unreachable!("a batch is scheduled, then executed")
        };
        self.chain
            .send(Tx::call(
                self.governor,
                self.timelock,
                schedule.input.clone(),
            ))
            .expect("schedule a governance batch");
        self.chain.send(Tx::call(
            self.governor,
            self.timelock,
            execute.input.clone(),
        ))
    }

    /// Sets the network fee through governance.
    ///
    /// # Errors
    ///
    /// The revert of `setNetworkFee` (through the timelock).
    pub fn set_network_fee(&mut self, receiver: Address, bps: u16) -> Result<(), TxError> {
        let call = PaymentCondition::setNetworkFeeCall { receiver, bps };
        self.govern(&[(self.suite.payment, call.abi_encode())])
            .map(|_| ())
    }

    /// A fresh seed, different on every call: 8 random-looking bytes, as a client picks them (the
    /// rest of a seed's 32 bytes are zero, which is cheaper in calldata).
    pub fn seed(&mut self) -> B256 {
        self.seeds += 1;
        let mut seed = B256::ZERO;
        seed[24..].copy_from_slice(&keccak256(self.seeds.to_be_bytes())[..8]);
        seed
    }

    /// Registers a new asset owned by `owner` with `providers`; returns its did.
    ///
    /// # Panics
    ///
    /// If the registration reverts.
    pub fn register_asset(&mut self, owner: Address, providers: &[Address]) -> B256 {
        let seed = self.seed();
        let call = AssetRegistry::registerCall {
            seed,
            checksum: metadata_checksum(),
            url: "https://provider.example/metadata.json".into(),
            providers: providers.to_vec(),
        };
        self.transact(owner, self.suite.asset_registry, &call, U256::ZERO)
            .expect("register asset")
            .output
    }

    /// Mints `amount` of a mock token to `to` (any mock with `mint(address,uint256)`).
    ///
    /// # Panics
    ///
    /// If minting reverts.
    pub fn mint(&mut self, token: Address, to: Address, amount: U256) {
        let call = MockERC20::mintCall { to, amount };
        self.chain
            .transact(self.governor, token, &call)
            .expect("mint");
    }

    /// `owner` approves `spender` for `amount` of `token`.
    ///
    /// # Panics
    ///
    /// If the approval reverts.
    pub fn approve(&mut self, token: Address, owner: Address, spender: Address, amount: U256) {
        // Raw calldata: works for tokens whose `approve` returns nothing, too.
        let call = MockERC20::approveCall {
            spender,
            value: amount,
        };
        let input: Bytes = call.abi_encode().into();
        self.chain
            .send(Tx::call(owner, token, input))
            .expect("approve");
    }

    /// The `token` balance of `account` (ETH when `token` is zero).
    ///
    /// # Panics
    ///
    /// If `balanceOf` fails.
    pub fn balance(&mut self, token: Address, account: Address) -> U256 {
        if token == Address::ZERO {
            return self.chain.balance(account);
        }
        self.chain
            .call(token, &MockERC20::balanceOfCall { account })
            .expect("balanceOf")
    }

    /// The template address of `service`.
    pub fn template(&self, service: Service) -> Address {
        match service {
            Service::Access => self.suite.access_template,
            Service::Compute => self.suite.compute_template,
        }
    }

    /// The service condition address of `service`.
    pub fn service_address(&self, service: Service) -> Address {
        match service {
            Service::Access => self.suite.access,
            Service::Compute => self.suite.compute_execution,
        }
    }

    /// An unsigned offer by `keeper` on `did` paying `split` in `token`, for the asset's current
    /// checksum and offer epoch, with time outs between [`OFFER_MIN_TIMEOUT`] and
    /// [`OFFER_MAX_TIMEOUT`], valid for [`OFFER_VALIDITY`].
    ///
    /// # Panics
    ///
    /// If the registry cannot be read.
    pub fn offer(&mut self, did: B256, token: Address, split: &[(Address, u64)]) -> Offer {
        let asset = self
            .chain
            .call(
                self.suite.asset_registry,
                &AssetRegistry::getAssetCall { did },
            )
            .expect("getAsset");
        Offer {
            did,
            checksum: asset.checksum,
            provider: self.keeper,
            token,
            receivers: split.iter().map(|(to, _)| *to).collect(),
            amounts: split
                .iter()
                .map(|(_, amount)| U256::from(*amount))
                .collect(),
            minServiceTimeout: OFFER_MIN_TIMEOUT,
            maxServiceTimeout: OFFER_MAX_TIMEOUT,
            expiry: self.chain.timestamp() + OFFER_VALIDITY,
            epoch: asset.offerEpoch,
        }
    }

    /// The EIP-712 domain of `service`'s offers.
    pub fn offer_domain(&self, service: Service) -> alloy::sol_types::Eip712Domain {
        let name = match service {
            Service::Access => offers::ACCESS_TEMPLATE_DOMAIN,
            Service::Compute => offers::COMPUTE_TEMPLATE_DOMAIN,
        };
        offers::domain(name, self.chain.chain_id(), self.template(service))
    }

    /// `signer` signs `offer` for `service` (whatever account the offer names).
    ///
    /// # Panics
    ///
    /// If the chain holds no key for `signer`.
    pub fn sign_offer_as(&self, service: Service, offer: Offer, signer: Address) -> SignedOffer {
        let hash = offers::signing_hash(&offer, &self.offer_domain(service));
        let key = self.chain.signer(signer).expect("a key for the signer");
        let signature = key.sign_hash_sync(&hash).expect("sign");
        SignedOffer {
            offer,
            signature: signature.as_bytes().to_vec().into(),
        }
    }

    /// The offer signed by the account it names.
    pub fn sign_offer(&self, service: Service, offer: Offer) -> SignedOffer {
        let provider = offer.provider;
        self.sign_offer_as(service, offer, provider)
    }

    /// `consumer` buys `signed` for `service` in one transaction (`createAgreementAndPay`), sending
    /// `value` wei, with the longest time out and no cap on the total. Returns the deal and the
    /// receipt.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn buy(
        &mut self,
        service: Service,
        consumer: Address,
        signed: &SignedOffer,
        value: U256,
    ) -> Result<(Deal, Receipt<B256>), TxError> {
        self.buy_with(service, consumer, signed, 0, U256::MAX, value)
    }

    /// As [`World::buy`] with the service time out and the most the consumer accepts to pay.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn buy_with(
        &mut self,
        service: Service,
        consumer: Address,
        signed: &SignedOffer,
        service_timeout: u32,
        max_total: U256,
        value: U256,
    ) -> Result<(Deal, Receipt<B256>), TxError> {
        let template = self.template(service);
        let seed = self.seed();
        let call = PaymentCondition::createAgreementAndPayCall {
            template,
            seed,
            offer: signed.offer.clone().into(),
            signature: signed.signature.clone(),
            serviceTimeout: service_timeout,
            maxTotal: max_total,
        };
        let receipt = self.transact(consumer, self.suite.payment, &call, value)?;
        let deal = self.deal_from(service, &receipt);
        Ok((deal, receipt))
    }

    /// `consumer` creates an agreement on `signed` without paying yet (the template's
    /// `createAgreement`, longest time out, no cap).
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn create(
        &mut self,
        service: Service,
        consumer: Address,
        signed: &SignedOffer,
    ) -> Result<(Deal, Receipt<B256>), TxError> {
        let template = self.template(service);
        let seed = self.seed();
        let call = ServiceTemplate::createAgreementCall {
            seed,
            offer: signed.offer.clone(),
            signature: signed.signature.clone(),
            serviceTimeout: 0,
            maxTotal: U256::MAX,
        };
        let receipt = self.transact(consumer, template, &call, U256::ZERO)?;
        let deal = self.deal_from(service, &receipt);
        Ok((deal, receipt))
    }

    /// The usual deal: `consumer` buys `service` on `did` for 1,000 tokens paid to the provider,
    /// on the keeper's offer, in one transaction.
    ///
    /// # Panics
    ///
    /// If it reverts.
    pub fn paid_deal(&mut self, service: Service) -> Deal {
        let (token, provider, consumer, did) = (self.token, self.provider, self.consumer, self.did);
        let offer = self.offer(did, token, &[(provider, 1_000)]);
        let signed = self.sign_offer(service, offer);
        self.buy(service, consumer, &signed, U256::ZERO)
            .expect("create and pay")
            .0
    }

    /// Reads the deal an agreement-creating receipt created.
    ///
    /// # Panics
    ///
    /// If the receipt lacks the creation events.
    pub fn deal_from(&self, service: Service, receipt: &Receipt<B256>) -> Deal {
        let created = receipt
            .event::<AgreementStore::AgreementCreated>()
            .expect("an AgreementCreated event");
        let terms = receipt
            .event::<ServiceTemplate::AgreementTerms>()
            .expect("an AgreementTerms event");
        assert_eq!(created.agreementId, receipt.output);
        assert_eq!(terms.agreementId, receipt.output);
        let template = self.template(service);
        assert_eq!(created.template, template);
        let [payment_id, service_id] = created.conditionIds[..] else {
            panic!("a service agreement has two conditions");
        };
        Deal {
            service,
            template,
            service_condition: self.service_address(service),
            agreement_id: created.agreementId,
            did: created.did,
            consumer: created.consumer,
            provider: terms.provider,
            token: terms.token,
            receivers: terms.receivers,
            amounts: terms.amounts,
            fee: terms.fee,
            service_timeout: terms.serviceTimeout,
            payment_id,
            service_id,
        }
    }

    /// `payer` pays for a deal created without payment (`PaymentCondition.lock`), sending `value`
    /// wei.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn lock(
        &mut self,
        deal: &Deal,
        payer: Address,
        value: U256,
    ) -> Result<Receipt<B256>, TxError> {
        let call = PaymentCondition::lockCall {
            agreementId: deal.agreement_id,
            did: deal.did,
            service: deal.service_condition,
            payment: deal.payment(),
        };
        self.transact(payer, self.suite.payment, &call, value)
    }

    /// `from` fulfils the deal's service condition (access, or compute with a result id).
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn serve(&mut self, deal: &Deal, from: Address) -> Result<Receipt<B256>, TxError> {
        match deal.service {
            Service::Access => {
                let call = AccessCondition::fulfilCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    paymentConditionId: deal.payment_id,
                };
                self.transact(from, self.suite.access, &call, U256::ZERO)
            }
            Service::Compute => {
                let call = ComputeExecutionCondition::fulfilCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    paymentConditionId: deal.payment_id,
                    result: keccak256(deal.agreement_id),
                };
                self.transact(from, self.suite.compute_execution, &call, U256::ZERO)
            }
        }
    }

    /// `from` fulfils the deal's service condition and releases its payment in one transaction
    /// (`fulfilAndRelease`), as a keeper does.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn serve_and_release(
        &mut self,
        deal: &Deal,
        from: Address,
    ) -> Result<Receipt<B256>, TxError> {
        match deal.service {
            Service::Access => {
                let call = AccessCondition::fulfilAndReleaseCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    payment: deal.payment().into(),
                };
                self.transact(from, self.suite.access, &call, U256::ZERO)
            }
            Service::Compute => {
                let call = ComputeExecutionCondition::fulfilAndReleaseCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    result: keccak256(deal.agreement_id),
                    payment: deal.payment().into(),
                };
                self.transact(from, self.suite.compute_execution, &call, U256::ZERO)
            }
        }
    }

    /// The address of the deal's service condition contract.
    pub fn service_condition(&self, deal: &Deal) -> Address {
        deal.service_condition
    }

    /// `from` releases the deal's payment.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn release(&mut self, deal: &Deal, from: Address) -> Result<Receipt<B256>, TxError> {
        self.transact(from, self.suite.payment, &deal.release_call(), U256::ZERO)
    }

    /// `from` refunds the deal's payment.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn refund(&mut self, deal: &Deal, from: Address) -> Result<Receipt<B256>, TxError> {
        self.transact(from, self.suite.payment, &deal.refund_call(), U256::ZERO)
    }

    /// `from` aborts the deal's service condition once it timed out.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn abort_service(&mut self, deal: &Deal, from: Address) -> Result<Receipt<()>, TxError> {
        let call = AccessCondition::abortTimedOutCall {
            conditionId: deal.service_id,
        };
        let target = deal.service_condition;
        Ok(self.transact(from, target, &call, U256::ZERO)?.map(|_| ()))
    }

    /// The state of a condition (see [`state`]).
    ///
    /// # Panics
    ///
    /// If the view call fails.
    pub fn state(&mut self, condition_id: B256) -> u8 {
        let call = AgreementStore::conditionStateCall {
            conditionId: condition_id,
        };
        self.chain
            .call(self.suite.agreement_store, &call)
            .expect("conditionState")
    }

    /// The escrow credit of `account` in `token`.
    ///
    /// # Panics
    ///
    /// If the view call fails.
    pub fn credit(&mut self, token: Address, account: Address) -> U256 {
        let call = PaymentCondition::creditsCall { token, account };
        self.chain.call(self.suite.payment, &call).expect("credits")
    }
}

impl World {
    /// `owner` signs an EIP-2612 permit of `value` of `token` (a [`insitu_bindings::PermitToken`])
    /// to `spender`, valid until `deadline`.
    ///
    /// # Panics
    ///
    /// If the token cannot be read or the chain holds no key for `owner`.
    pub fn sign_permit(
        &mut self,
        token: Address,
        owner: Address,
        spender: Address,
        value: U256,
        deadline: u64,
    ) -> PaymentCondition::PermitSignature {
        use insitu_bindings::PermitToken;
        use insitu_bindings::permits::{self, Permit};
        let name = self
            .chain
            .call(token, &PermitToken::nameCall {})
            .expect("token name");
        let nonce = self
            .chain
            .call(token, &PermitToken::noncesCall { owner })
            .expect("permit nonce");
        let domain = permits::domain(name, self.chain.chain_id(), token);
        let permit = Permit {
            owner,
            spender,
            value,
            nonce,
            deadline: U256::from(deadline),
        };
        let hash = permits::signing_hash(&permit, &domain);
        let signature = self
            .chain
            .signer(owner)
            .expect("a key for the owner")
            .sign_hash_sync(&hash)
            .expect("sign");
        PaymentCondition::PermitSignature {
            deadline: U256::from(deadline),
            v: 27 + u8::from(signature.v()),
            r: signature.r().into(),
            s: signature.s().into(),
        }
    }

    /// `consumer` buys `signed` in one transaction paying with an EIP-2612 permit for exactly the
    /// total (`createAgreementAndPayWithPermit`), longest time out, paying at most `max_total`.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn buy_with_permit(
        &mut self,
        service: Service,
        consumer: Address,
        signed: &SignedOffer,
        max_total: U256,
        permit: PaymentCondition::PermitSignature,
    ) -> Result<(Deal, Receipt<B256>), TxError> {
        let call = PaymentCondition::createAgreementAndPayWithPermitCall {
            template: self.template(service),
            seed: self.seed(),
            offer: signed.offer.clone().into(),
            signature: signed.signature.clone(),
            serviceTimeout: 0,
            maxTotal: max_total,
            permit,
        };
        let receipt = self.transact(consumer, self.suite.payment, &call, U256::ZERO)?;
        let deal = self.deal_from(service, &receipt);
        Ok((deal, receipt))
    }

    /// The total `consumer` would pay for `signed` now (price plus the current network fee).
    ///
    /// # Panics
    ///
    /// If the preview reverts.
    pub fn quote(&mut self, service: Service, consumer: Address, signed: &SignedOffer) -> U256 {
        let call = ServiceTemplate::previewAgreementCall {
            seed: B256::ZERO,
            consumer,
            offer: signed.offer.clone(),
            serviceTimeout: 0,
        };
        self.chain
            .call(self.template(service), &call)
            .expect("previewAgreement")
            .total
    }
}

/// Replaces the salt argument of a timelock `scheduleBatch` or `executeBatch` calldata.
fn resalt(input: &Bytes, salt: B256) -> Bytes {
    use alloy::sol_types::SolCall as _;
    use insitu_bindings::GovernanceTimelock;
    if let Ok(mut call) = GovernanceTimelock::scheduleBatchCall::abi_decode(input) {
        call.salt = salt;
        return call.abi_encode().into();
    }
    let mut call =
        GovernanceTimelock::executeBatchCall::abi_decode(input).expect("a timelock batch call");
    call.salt = salt;
    call.abi_encode().into()
}

/// Condition states as the bindings return them.
pub mod state {
    /// No such condition.
    pub const UNINITIALIZED: u8 = 0;
    /// Created, not settled.
    pub const UNFULFILLED: u8 = 1;
    /// Fulfilled (for a payment: paid into escrow).
    pub const FULFILLED: u8 = 2;
    /// Aborted.
    pub const ABORTED: u8 = 3;
    /// A payment released to its receivers.
    pub const RELEASED: u8 = 4;
    /// A payment refunded to its payer.
    pub const REFUNDED: u8 = 5;
}
