//! The deployed insitu suite on a [`Chain`], with named parties and helpers for the steps of an
//! agreement's life. Every contract test starts from a [`World`].

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use insitu_bindings::deployment::{self, DeployOptions, SuiteAddresses};
use insitu_bindings::{
    AccessCondition, AgreementStore, AssetRegistry, ComputeExecutionCondition,
    EscrowPaymentCondition, LockPaymentCondition, MockERC20, ServiceTemplate,
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

/// Everything needed to act on one agreement, read from its `AgreementTerms` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deal {
    /// The service sold.
    pub service: Service,
    /// The template that created it.
    pub template: Address,
    /// Agreement id.
    pub agreement_id: B256,
    /// Asset id.
    pub did: B256,
    /// Consumer (payer).
    pub consumer: Address,
    /// Payment token (zero: ETH).
    pub token: Address,
    /// Receivers.
    pub receivers: Vec<Address>,
    /// Amounts, in the order of `receivers`.
    pub amounts: Vec<U256>,
    /// Network fee, accrued in the escrow on release.
    pub fee: U256,
    /// Lock payment condition id.
    pub lock_id: B256,
    /// Access or compute condition id.
    pub service_id: B256,
    /// Escrow payment condition id.
    pub escrow_id: B256,
}

impl Deal {
    /// The escrow's `release` call for this deal (its only release condition is the service).
    pub fn release_call(&self) -> EscrowPaymentCondition::releaseCall {
        EscrowPaymentCondition::releaseCall {
            agreementId: self.agreement_id,
            did: self.did,
            token: self.token,
            payer: self.consumer,
            receivers: self.receivers.clone(),
            amounts: self.amounts.clone(),
            fee: self.fee,
            releaseConditions: vec![self.service_id],
        }
    }

    /// What the consumer paid: the amounts plus the fee.
    pub fn total(&self) -> U256 {
        self.amounts.iter().copied().sum::<U256>() + self.fee
    }
}

/// Network fee used by [`World::with_fee`]: 1%.
pub const FEE_BPS: u16 = 100;
/// Tokens minted to the consumer by [`World::new`].
pub const CONSUMER_TOKENS: u64 = 1_000_000_000;

/// A chain with the suite deployed, a standard ERC20, and named parties:
///
/// - `governor` deployed the suite and governs it;
/// - `provider` owns the asset `did`, and `keeper` is in its provider set;
/// - `consumer` holds [`CONSUMER_TOKENS`] of `token` and approved the lock condition for all;
/// - `co_provider` and `fee_receiver` receive payments; `outsider` has no role at all.
#[derive(Debug)]
pub struct World {
    /// The chain.
    pub chain: Chain,
    /// The suite's addresses.
    pub suite: SuiteAddresses,
    /// Deployer and governor.
    pub governor: Address,
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
            governor,
            network_fee: fee_bps.map(|bps| (fee_receiver, bps)),
        };
        let suite = deploy_suite(&mut chain, governor, options).expect("deploy the suite");
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
        };
        world.mint(token, consumer, U256::from(CONSUMER_TOKENS));
        world.approve(token, consumer, world.suite.lock_payment, U256::MAX);
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

    /// A fresh seed, different on every call.
    pub fn seed(&mut self) -> B256 {
        self.seeds += 1;
        keccak256(self.seeds.to_be_bytes())
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
            checksum: keccak256(b"metadata"),
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

    /// Payment terms paying `split` in `token`, with the default service time out.
    pub fn terms(token: Address, split: &[(Address, u64)]) -> ServiceTemplate::Terms {
        ServiceTemplate::Terms {
            token,
            receivers: split.iter().map(|(to, _)| *to).collect(),
            amounts: split
                .iter()
                .map(|(_, amount)| U256::from(*amount))
                .collect(),
            serviceTimeout: 0,
        }
    }

    /// `consumer` creates an agreement for `did` and pays in the same transaction, sending
    /// `value` wei. Returns the deal and the receipt.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn create_and_lock(
        &mut self,
        service: Service,
        consumer: Address,
        did: B256,
        terms: ServiceTemplate::Terms,
        value: U256,
    ) -> Result<(Deal, Receipt<B256>), TxError> {
        let seed = self.seed();
        let template = self.template(service);
        let call = ServiceTemplate::createAgreementAndLockCall { seed, did, terms };
        let receipt = self.transact(consumer, template, &call, value)?;
        let deal = Self::deal_from(service, template, &receipt);
        Ok((deal, receipt))
    }

    /// `consumer` creates an agreement for `did` without paying yet.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn create(
        &mut self,
        service: Service,
        consumer: Address,
        did: B256,
        terms: ServiceTemplate::Terms,
    ) -> Result<(Deal, Receipt<B256>), TxError> {
        let seed = self.seed();
        let template = self.template(service);
        let call = ServiceTemplate::createAgreementCall { seed, did, terms };
        let receipt = self.transact(consumer, template, &call, U256::ZERO)?;
        let deal = Self::deal_from(service, template, &receipt);
        Ok((deal, receipt))
    }

    /// The usual access deal: `consumer` buys access to `did` for 1,000 tokens paid to the
    /// provider, in one transaction.
    ///
    /// # Panics
    ///
    /// If it reverts.
    pub fn paid_deal(&mut self, service: Service) -> Deal {
        let terms = Self::terms(self.token, &[(self.provider, 1_000)]);
        let (consumer, did) = (self.consumer, self.did);
        self.create_and_lock(service, consumer, did, terms, U256::ZERO)
            .expect("create and lock")
            .0
    }

    fn deal_from(service: Service, template: Address, receipt: &Receipt<B256>) -> Deal {
        let created = receipt
            .event::<AgreementStore::AgreementCreated>()
            .expect("an AgreementCreated event");
        let terms = receipt
            .event::<ServiceTemplate::AgreementTerms>()
            .expect("an AgreementTerms event");
        assert_eq!(created.agreementId, receipt.output);
        assert_eq!(terms.agreementId, receipt.output);
        assert_eq!(created.template, template);
        let [lock_id, service_id, escrow_id] = created.conditionIds[..] else {
            panic!("a service agreement has three conditions");
        };
        Deal {
            service,
            template,
            agreement_id: created.agreementId,
            did: created.did,
            consumer: created.consumer,
            token: terms.token,
            receivers: terms.receivers,
            amounts: terms.amounts,
            fee: terms.fee,
            lock_id,
            service_id,
            escrow_id,
        }
    }

    /// `payer` pays for a deal created without payment, sending `value` wei.
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
        let call = LockPaymentCondition::lockCall {
            agreementId: deal.agreement_id,
            did: deal.did,
            escrow: self.suite.escrow_payment,
            token: deal.token,
            receivers: deal.receivers.clone(),
            amounts: deal.amounts.clone(),
            fee: deal.fee,
        };
        self.transact(payer, self.suite.lock_payment, &call, value)
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
                    lockConditionId: deal.lock_id,
                };
                self.transact(from, self.suite.access, &call, U256::ZERO)
            }
            Service::Compute => {
                let call = ComputeExecutionCondition::fulfilCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    lockConditionId: deal.lock_id,
                    result: keccak256(deal.agreement_id),
                };
                self.transact(from, self.suite.compute_execution, &call, U256::ZERO)
            }
        }
    }

    /// `from` fulfils the deal's service condition and releases its escrow in one transaction
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
        let payment = insitu_bindings::access_condition::ServiceCondition::Payment {
            token: deal.token,
            receivers: deal.receivers.clone(),
            amounts: deal.amounts.clone(),
            fee: deal.fee,
        };
        match deal.service {
            Service::Access => {
                let call = AccessCondition::fulfilAndReleaseCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    lockConditionId: deal.lock_id,
                    payment,
                };
                self.transact(from, self.suite.access, &call, U256::ZERO)
            }
            Service::Compute => {
                let call = ComputeExecutionCondition::fulfilAndReleaseCall {
                    agreementId: deal.agreement_id,
                    did: deal.did,
                    consumer: deal.consumer,
                    lockConditionId: deal.lock_id,
                    result: keccak256(deal.agreement_id),
                    payment:
                        insitu_bindings::compute_execution_condition::ServiceCondition::Payment {
                            token: payment.token,
                            receivers: payment.receivers,
                            amounts: payment.amounts,
                            fee: payment.fee,
                        },
                };
                self.transact(from, self.suite.compute_execution, &call, U256::ZERO)
            }
        }
    }

    /// The address of the deal's service condition contract.
    pub fn service_condition(&self, deal: &Deal) -> Address {
        match deal.service {
            Service::Access => self.suite.access,
            Service::Compute => self.suite.compute_execution,
        }
    }

    /// `from` releases the deal's escrow.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn release(&mut self, deal: &Deal, from: Address) -> Result<Receipt<B256>, TxError> {
        self.transact(
            from,
            self.suite.escrow_payment,
            &deal.release_call(),
            U256::ZERO,
        )
    }

    /// `from` refunds the deal's escrow.
    ///
    /// # Errors
    ///
    /// The revert of the transaction.
    pub fn refund(&mut self, deal: &Deal, from: Address) -> Result<Receipt<B256>, TxError> {
        let release = deal.release_call();
        let call = EscrowPaymentCondition::refundCall {
            agreementId: release.agreementId,
            did: release.did,
            token: release.token,
            payer: release.payer,
            receivers: release.receivers,
            amounts: release.amounts,
            fee: release.fee,
            releaseConditions: release.releaseConditions,
        };
        self.transact(from, self.suite.escrow_payment, &call, U256::ZERO)
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
        let target = self.service_condition(deal);
        Ok(self.transact(from, target, &call, U256::ZERO)?.map(|_| ()))
    }

    /// The state of a condition (0 Uninitialized, 1 Unfulfilled, 2 Fulfilled, 3 Aborted).
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
        let call = EscrowPaymentCondition::creditsCall { token, account };
        self.chain
            .call(self.suite.escrow_payment, &call)
            .expect("credits")
    }
}

/// Condition states as the bindings return them.
pub mod state {
    /// No such condition.
    pub const UNINITIALIZED: u8 = 0;
    /// Created, not settled.
    pub const UNFULFILLED: u8 = 1;
    /// Fulfilled.
    pub const FULFILLED: u8 = 2;
    /// Aborted.
    pub const ABORTED: u8 = 3;
}
