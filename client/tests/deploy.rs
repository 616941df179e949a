//! Deploying the suite to a real anvil node, its governance, the deploy command, and the
//! end-to-end demo on it.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, TxKind, U256, aliases::U48},
    providers::{Provider, ProviderBuilder},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolError},
};
use insitu_bindings::{
    AgreementStore, GovernanceTimelock, PaymentCondition,
    deployment::{DeployOptions, Governance, PlannedTx},
};
use insitu_client::{
    addresses::Deployment,
    demo,
    deploy::{DeployError, Deployed, PendingGovernance, deploy_suite, format_utc},
    devnet::Devnet,
    rpc::{self, Endpoint},
    simulate::SimulationError,
    tx::{Sender, Silent, TxOptions},
};

/// `TemplateRegistry.TemplateState.Proposed`.
const PROPOSED: u8 = 1;
/// `TemplateRegistry.TemplateState.Approved`.
const APPROVED: u8 = 2;
/// Contracts of the suite without the timelock.
const CONTRACTS: usize = 10;
/// Template proposals sent by the deployer.
const PROPOSALS: usize = 2;

fn keys(devnet: &Devnet) -> Vec<PrivateKeySigner> {
    devnet.signers()
}

/// Deploys the suite from `key`'s account, as the command does (without a journal).
async fn deploy_as(
    devnet: &Devnet,
    key: &PrivateKeySigner,
    options: DeployOptions,
) -> Result<Deployed, DeployError> {
    let endpoint = Endpoint::parse(&devnet.endpoint()).expect("endpoint");
    let connection = rpc::connect(&endpoint, Some(devnet.chain_id()))
        .await
        .expect("connect");
    let sender = Sender::new(
        connection.provider,
        connection.chain_id,
        key.clone(),
        TxOptions::default(),
    );
    deploy_suite(&sender, options, None, &Silent)
        .await
        .map(|(deployed, _journal)| deployed)
}

/// A provider signing for each of `keys`.
fn provider_for(devnet: &Devnet, keys: &[PrivateKeySigner]) -> impl Provider + Clone + use<> {
    let mut wallet = EthereumWallet::from(keys[0].clone());
    for key in &keys[1..] {
        wallet.register_signer(key.clone());
    }
    ProviderBuilder::new()
        .wallet(wallet)
        .connect_http(devnet.endpoint().parse().unwrap())
}

/// Sends planned call `call` from `from` and returns the receipt (which may have reverted).
async fn send(provider: &impl Provider, from: Address, call: &PlannedTx) -> TransactionReceipt {
    let TxKind::Call(to) = call.kind else {
        panic!("{} is a call", call.label);
    };
    let request = TransactionRequest::default()
        .from(from)
        .to(to)
        .input(call.input.clone().into());
    provider
        .send_transaction(request)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
}

/// The custom error `E` that planned call `call` from `from` reverts with (checked with `eth_call`:
/// a reverting transaction is not even sent, its gas estimate fails).
async fn refused<E: SolError>(provider: &impl Provider, from: Address, call: &PlannedTx) -> E {
    let TxKind::Call(to) = call.kind else {
        panic!("{} is a call", call.label);
    };
    let request = TransactionRequest::default()
        .from(from)
        .to(to)
        .input(call.input.clone().into());
    let err = provider
        .call(request)
        .await
        .err()
        .unwrap_or_else(|| panic!("{} succeeds", call.label));
    let data = err
        .as_error_resp()
        .and_then(|payload| payload.as_revert_data())
        .unwrap_or_else(|| panic!("{}: no revert data in {err}", call.label));
    E::abi_decode(&data)
        .unwrap_or_else(|_| panic!("{}: not {} but {data}", call.label, E::SIGNATURE))
}

/// Moves the chain's clock forward by `seconds` and mines a block.
async fn wait(provider: &impl Provider, seconds: u64) {
    let _: serde_json::Value = provider
        .raw_request("evm_increaseTime".into(), (seconds,))
        .await
        .unwrap();
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
}

async fn block_time(provider: &impl Provider, tx: B256) -> u64 {
    let receipt = provider.get_transaction_receipt(tx).await.unwrap().unwrap();
    provider
        .get_block_by_number(receipt.block_number.unwrap().into())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp
}

async fn template_states(
    provider: &impl Provider,
    deployed: &insitu_client::deploy::Deployed,
) -> [u8; 2] {
    let suite = deployed.plan.addresses;
    let store = AgreementStore::new(suite.agreement_store, provider);
    [
        store
            .templateState(suite.access_template)
            .call()
            .await
            .unwrap(),
        store
            .templateState(suite.compute_template)
            .call()
            .await
            .unwrap(),
    ]
}

async fn network_fee(provider: &impl Provider, payment: Address) -> (Address, u16) {
    let fee = PaymentCondition::new(payment, provider)
        .networkFee()
        .call()
        .await
        .unwrap();
    (fee.receiver, fee.bps)
}

#[tokio::test]
async fn an_account_governed_deploy_wires_the_suite_as_planned() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let deployer = keys[0].address();
    let fee_receiver = keys[3].address();
    let provider = provider_for(&devnet, &keys[..1]);

    let options = DeployOptions {
        governance: Governance::Account(deployer),
        admin_transfer_delay: 0,
        network_fee: Some((fee_receiver, 250)),
    };
    let deployed = deploy_as(&devnet, &keys[0], options).await.expect("deploy");
    // Contracts, proposals, two approvals and the fee.
    assert_eq!(deployed.transactions.len(), CONTRACTS + PROPOSALS + 3);
    assert!(deployed.plan.governor_calls.is_empty());
    assert_eq!(deployed.governance, PendingGovernance::Done);
    assert_eq!(deployed.governance.instructions(), "");
    assert_eq!(deployed.deployment.chain_id, 31337);
    assert_eq!(deployed.deployment.contracts.len(), CONTRACTS);
    assert!(
        !deployed
            .deployment
            .contracts
            .contains_key("GovernanceTimelock")
    );
    assert_eq!(
        deployed.deployment.block,
        provider.get_block_number().await.unwrap()
    );
    for (name, address) in &deployed.deployment.contracts {
        let code = provider.get_code_at(*address).await.unwrap();
        assert!(!code.is_empty(), "{name} has code");
    }

    let suite = deployed.plan.addresses;
    assert_eq!(template_states(&provider, &deployed).await, [APPROVED; 2]);
    let store = AgreementStore::new(suite.agreement_store, &provider);
    assert!(store.isGovernor(deployer).call().await.unwrap());
    assert_eq!(store.defaultAdmin().call().await.unwrap(), deployer);
    assert_eq!(
        network_fee(&provider, suite.payment).await,
        (fee_receiver, 250)
    );

    // The addresses file round-trips.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("31337.json");
    deployed.deployment.write(&path).unwrap();
    assert_eq!(Deployment::read(&path).unwrap(), deployed.deployment);

    // A second deployment by the same account lands at new addresses.
    let again = deploy_as(&devnet, &keys[0], options)
        .await
        .expect("deploy again");
    assert_ne!(again.plan.addresses, suite);
}

#[tokio::test]
async fn a_timelock_without_delay_governs_in_the_deploy_itself() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let deployer = keys[0].address();
    let fee_receiver = keys[3].address();
    let provider = provider_for(&devnet, &keys[..1]);

    let options = DeployOptions {
        governance: Governance::Timelock {
            proposer: deployer,
            delay: 0,
        },
        admin_transfer_delay: 3_600,
        network_fee: Some((fee_receiver, 250)),
    };
    let deployed = deploy_as(&devnet, &keys[0], options).await.expect("deploy");
    // Timelock and contracts, proposals, and the batch scheduled then executed.
    assert_eq!(deployed.transactions.len(), 1 + CONTRACTS + PROPOSALS + 2);
    assert!(deployed.plan.governor_calls.is_empty());
    assert_eq!(deployed.governance, PendingGovernance::Done);
    assert_eq!(deployed.deployment.contracts.len(), CONTRACTS + 1);
    let suite = deployed.plan.addresses;
    let timelock_address = suite.governance_timelock.expect("a timelock");
    assert_eq!(
        deployed.deployment.address("GovernanceTimelock").unwrap(),
        timelock_address
    );
    // The command refuses fees above the contract's cap before sending anything: the two agree.
    let cap = PaymentCondition::new(suite.payment, &provider)
        .MAX_FEE_BPS()
        .call()
        .await
        .expect("MAX_FEE_BPS");
    assert_eq!(cap, insitu_client::deploy::MAX_FEE_BPS);
    assert!(
        !provider
            .get_code_at(timelock_address)
            .await
            .unwrap()
            .is_empty()
    );

    // The templates are approved and the fee set, by the deployment itself.
    let store = AgreementStore::new(suite.agreement_store, &provider);
    for template in [suite.access_template, suite.compute_template] {
        assert!(store.isTemplateApproved(template).call().await.unwrap());
    }
    assert_eq!(
        network_fee(&provider, suite.payment).await,
        (fee_receiver, 250)
    );

    // The governor and admin roles are the timelock's, not the deployer's.
    let governor_role = store.GOVERNOR_ROLE().call().await.unwrap();
    assert!(
        store
            .hasRole(governor_role, timelock_address)
            .call()
            .await
            .unwrap()
    );
    assert!(!store.hasRole(governor_role, deployer).call().await.unwrap());
    assert!(!store.isGovernor(deployer).call().await.unwrap());
    assert_eq!(store.defaultAdmin().call().await.unwrap(), timelock_address);
    assert_eq!(
        store.defaultAdminDelay().call().await.unwrap(),
        U48::from(3_600)
    );
    let timelock = GovernanceTimelock::new(timelock_address, &provider);
    assert_eq!(timelock.getMinDelay().call().await.unwrap(), U256::ZERO);
    let proposer_role = timelock.PROPOSER_ROLE().call().await.unwrap();
    assert!(
        timelock
            .hasRole(proposer_role, deployer)
            .call()
            .await
            .unwrap()
    );
    let executor_role = timelock.EXECUTOR_ROLE().call().await.unwrap();
    assert!(
        timelock
            .hasRole(executor_role, Address::ZERO)
            .call()
            .await
            .unwrap(),
        "anyone may execute"
    );

    // So the deployer cannot govern directly.
    let err = PaymentCondition::new(suite.payment, &provider)
        .setNetworkFee(deployer, 1)
        .from(deployer)
        .call()
        .await
        .err()
        .expect("refused");
    let refused = err
        .as_decoded_error::<PaymentCondition::NotGovernor>()
        .expect("NotGovernor");
    assert_eq!(refused.caller, deployer);
    let err = store
        .revokeTemplate(suite.access_template)
        .from(deployer)
        .call()
        .await
        .err()
        .expect("refused");
    let refused = err
        .as_decoded_error::<AgreementStore::AccessControlUnauthorizedAccount>()
        .expect("AccessControlUnauthorizedAccount");
    assert_eq!(
        (refused.account, refused.neededRole),
        (deployer, governor_role)
    );
}

#[tokio::test]
async fn a_timelock_with_a_delay_leaves_the_batch_scheduled_not_executed() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let (deployer, fee_receiver, anyone) =
        (keys[0].address(), keys[3].address(), keys[5].address());
    let provider = provider_for(&devnet, &[keys[0].clone(), keys[5].clone()]);
    const DELAY: u64 = 2 * 86_400;

    let options = DeployOptions {
        governance: Governance::Timelock {
            proposer: deployer,
            delay: DELAY,
        },
        admin_transfer_delay: 0,
        network_fee: Some((fee_receiver, 100)),
    };
    let deployed = deploy_as(&devnet, &keys[0], options).await.expect("deploy");
    // The plan, then the deployer (the proposer) schedules the batch.
    assert_eq!(deployed.transactions.len(), 1 + CONTRACTS + PROPOSALS + 1);
    assert_eq!(
        deployed.deployment.block,
        provider.get_block_number().await.unwrap()
    );
    let suite = deployed.plan.addresses;
    let PendingGovernance::Scheduled {
        timelock: timelock_address,
        operation_id,
        ready_at,
        scheduled_in,
        execute,
    } = deployed.governance.clone()
    else {
        panic!("expected a scheduled batch, got {:?}", deployed.governance);
    };
    assert_eq!(Some(timelock_address), suite.governance_timelock);
    assert_eq!(scheduled_in, *deployed.transactions.last().unwrap());
    assert_eq!(execute, deployed.plan.governor_calls[1]);
    assert_eq!(
        ready_at,
        block_time(&provider, scheduled_in).await + DELAY,
        "executable the delay after scheduling"
    );

    // Scheduled, not executed: nothing approved, no fee.
    let timelock = GovernanceTimelock::new(timelock_address, &provider);
    assert!(
        timelock
            .isOperationPending(operation_id)
            .call()
            .await
            .unwrap()
    );
    assert!(
        !timelock
            .isOperationReady(operation_id)
            .call()
            .await
            .unwrap()
    );
    assert_eq!(
        timelock.getTimestamp(operation_id).call().await.unwrap(),
        U256::from(ready_at)
    );
    assert_eq!(template_states(&provider, &deployed).await, [PROPOSED; 2]);
    assert_eq!(
        network_fee(&provider, suite.payment).await,
        (Address::ZERO, 0)
    );

    // What the operator is told.
    let text = deployed.governance.instructions();
    assert!(text.contains(&operation_id.to_string()), "{text}");
    assert!(text.contains(&format_utc(ready_at)), "{text}");
    assert!(text.contains(&format!("unix time {ready_at}")), "{text}");
    assert!(
        text.contains(&format!(
            "to {timelock_address} data 0x{}",
            alloy::primitives::hex::encode(&execute.input)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "approveTemplate({}) on {}",
            suite.access_template, suite.agreement_store
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "setNetworkFee({fee_receiver}, 100 bps) on {}",
            suite.payment
        )),
        "{text}"
    );

    // Executing before the delay is refused by the timelock.
    let batch = GovernanceTimelock::executeBatchCall::abi_decode(&execute.input).unwrap();
    let err = timelock
        .executeBatch(
            batch.targets.clone(),
            batch.values.clone(),
            batch.payloads.clone(),
            batch.predecessor,
            batch.salt,
        )
        .from(anyone)
        .call()
        .await
        .err()
        .expect("refused");
    let refused = err
        .as_decoded_error::<GovernanceTimelock::TimelockUnexpectedOperationState>()
        .expect("TimelockUnexpectedOperationState");
    assert_eq!(refused.operationId, operation_id);

    // After the delay, anyone executes it.
    wait(&provider, DELAY).await;
    assert!(
        timelock
            .isOperationReady(operation_id)
            .call()
            .await
            .unwrap()
    );
    assert!(send(&provider, anyone, &execute).await.status());
    assert!(timelock.isOperationDone(operation_id).call().await.unwrap());
    assert_eq!(template_states(&provider, &deployed).await, [APPROVED; 2]);
    assert_eq!(
        network_fee(&provider, suite.payment).await,
        (fee_receiver, 100)
    );
}

#[tokio::test]
async fn a_separate_proposer_is_left_the_schedule_and_the_execute() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let (deployer, proposer, anyone) = (keys[0].address(), keys[1].address(), keys[5].address());
    let provider = provider_for(
        &devnet,
        &[keys[0].clone(), keys[1].clone(), keys[5].clone()],
    );
    const DELAY: u64 = 3_600;

    let options = DeployOptions {
        governance: Governance::Timelock {
            proposer,
            delay: DELAY,
        },
        admin_transfer_delay: 0,
        network_fee: None,
    };
    let deployed = deploy_as(&devnet, &keys[0], options).await.expect("deploy");
    assert_eq!(deployed.transactions.len(), 1 + CONTRACTS + PROPOSALS);
    let suite = deployed.plan.addresses;
    let PendingGovernance::Unscheduled {
        proposer: told,
        timelock: timelock_address,
        delay,
        operation_id,
        schedule,
        execute,
    } = deployed.governance.clone()
    else {
        panic!(
            "expected an unscheduled batch, got {:?}",
            deployed.governance
        );
    };
    assert_eq!((told, delay), (proposer, DELAY));
    assert_eq!(Some(timelock_address), suite.governance_timelock);
    assert_eq!(
        deployed.plan.governor_calls,
        [schedule.clone(), execute.clone()]
    );
    let text = deployed.governance.instructions();
    assert!(text.contains("NOT scheduled"), "{text}");
    assert!(text.contains(&proposer.to_string()), "{text}");
    assert!(text.contains("3600 seconds after"), "{text}");
    for call in [&schedule, &execute] {
        let data = alloy::primitives::hex::encode(&call.input);
        assert!(
            text.contains(&format!("to {timelock_address} data 0x{data}")),
            "{text}"
        );
    }

    // Nothing is scheduled, and the deployer could not have.
    let timelock = GovernanceTimelock::new(timelock_address, &provider);
    assert!(!timelock.isOperation(operation_id).call().await.unwrap());
    assert_eq!(template_states(&provider, &deployed).await, [PROPOSED; 2]);
    let proposer_role = timelock.PROPOSER_ROLE().call().await.unwrap();
    let refusal: GovernanceTimelock::AccessControlUnauthorizedAccount =
        refused(&provider, deployer, &schedule).await;
    assert_eq!(
        (refusal.account, refusal.neededRole),
        (deployer, proposer_role)
    );

    // The proposer schedules, and after the delay anyone executes.
    let receipt = send(&provider, proposer, &schedule).await;
    assert!(receipt.status());
    assert_eq!(
        timelock.getTimestamp(operation_id).call().await.unwrap(),
        U256::from(block_time(&provider, receipt.transaction_hash).await + DELAY)
    );
    let too_early: GovernanceTimelock::TimelockUnexpectedOperationState =
        refused(&provider, anyone, &execute).await;
    assert_eq!(too_early.operationId, operation_id);
    wait(&provider, DELAY).await;
    assert!(send(&provider, anyone, &execute).await.status());
    assert_eq!(template_states(&provider, &deployed).await, [APPROVED; 2]);
}

#[tokio::test]
async fn a_separate_governor_account_is_left_the_approvals_to_send() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let (deployer, governor) = (keys[0].address(), keys[1].address());
    let provider = provider_for(&devnet, &keys[..2]);

    let options = DeployOptions {
        governance: Governance::Account(governor),
        admin_transfer_delay: 0,
        network_fee: None,
    };
    let deployed = deploy_as(&devnet, &keys[0], options).await.expect("deploy");
    let suite = deployed.plan.addresses;
    let store = AgreementStore::new(suite.agreement_store, &provider);
    assert!(!store.isGovernor(deployer).call().await.unwrap());
    assert!(store.isGovernor(governor).call().await.unwrap());
    assert_eq!(template_states(&provider, &deployed).await, [PROPOSED; 2]);
    assert_eq!(deployed.plan.governor_calls.len(), 2);
    let PendingGovernance::Account {
        governor: told,
        calls,
    } = &deployed.governance
    else {
        panic!(
            "expected calls for the governor, got {:?}",
            deployed.governance
        );
    };
    assert_eq!(*told, governor);
    assert_eq!(calls, &deployed.plan.governor_calls);
    let text = deployed.governance.instructions();
    assert!(
        text.starts_with(&format!("the governor {governor} must still send:")),
        "{text}"
    );

    // The governor sends the calls it was left, and the templates are approved.
    for call in calls {
        assert!(
            send(&provider, governor, call).await.status(),
            "{}",
            call.label
        );
    }
    assert_eq!(template_states(&provider, &deployed).await, [APPROVED; 2]);
}

#[tokio::test]
async fn a_deployer_without_funds_gets_a_clear_error() {
    let devnet = Devnet::start().expect("anvil");
    let broke = PrivateKeySigner::random();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(broke.clone()))
        .connect_http(devnet.endpoint().parse().unwrap());
    let options = DeployOptions {
        governance: Governance::Timelock {
            proposer: broke.address(),
            delay: 0,
        },
        admin_transfer_delay: 0,
        network_fee: None,
    };
    let err = deploy_as(&devnet, &broke, options)
        .await
        .expect_err("no funds");
    assert!(
        matches!(err, DeployError::InsufficientFunds { deployer, balance, .. }
            if deployer == broke.address() && balance.is_zero()),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing was sent"), "{err}");
    assert_eq!(
        provider
            .get_transaction_count(broke.address())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_step_that_would_revert_is_named_with_its_decoded_error() {
    // The library takes a fee above the contract's cap (the command refuses it before sending):
    // the timelock's execution of the governance batch would revert inside `setNetworkFee`, and
    // the error names that step and the contract's error with its arguments.
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let deployer = keys[0].address();
    let provider = provider_for(&devnet, &keys[..1]);
    let options = DeployOptions {
        governance: Governance::Timelock {
            proposer: deployer,
            delay: 0,
        },
        admin_transfer_delay: 0,
        network_fee: Some((keys[3].address(), 2_000)),
    };
    let err = deploy_as(&devnet, &keys[0], options)
        .await
        .expect_err("the fee is above the cap");
    let DeployError::Simulation(SimulationError::Reverts { label, reason }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*label, "execute governance batch");
    assert_eq!(reason.name(), Some("FeeTooHigh"));
    assert_eq!(
        err.to_string(),
        "the deployment would fail, nothing was sent: `execute governance batch` would revert: \
         FeeTooHigh { bps: 2000, max: 1000 }"
    );
    // Simulated in memory: not one transaction was sent.
    assert_eq!(provider.get_transaction_count(deployer).await.unwrap(), 0);
}

#[tokio::test]
async fn the_demo_runs_a_paid_access_agreement_end_to_end() {
    let devnet = Devnet::start().expect("anvil");
    let keys = keys(&devnet);
    let report = demo::run(&devnet.endpoint(), &keys[..5])
        .await
        .expect("demo");
    assert!(report.consumer_has_access);
    let price = U256::from(demo::PRICE);
    let fee = price / U256::from(100);
    assert_eq!(report.quoted_total, price + fee);
    assert_eq!(
        report.allowance_left,
        U256::ZERO,
        "approved exactly the total"
    );
    let balance = |party: &str| {
        report
            .balances
            .iter()
            .find(|(name, _)| *name == party)
            .map(|(_, balance)| *balance)
            .unwrap()
    };
    assert_eq!(balance("consumer"), U256::ZERO);
    assert_eq!(balance("provider"), price);
    assert_eq!(balance("keeper"), U256::ZERO);
    assert_eq!(balance("fee receiver"), fee);
    assert_eq!(balance("escrow"), U256::ZERO);
    let labels: Vec<_> = report.steps.iter().map(|(step, _)| *step).collect();
    assert_eq!(
        labels,
        [
            "mint demo tokens to the consumer",
            "provider registers an asset (keeper serves)",
            "consumer approves the quoted total",
            "consumer creates the agreement and pays",
            "keeper grants access and releases the escrow",
            "fee receiver withdraws the network fee",
        ]
    );
    assert!(report.steps.iter().all(|(_, gas)| *gas > 21_000));

    let err = demo::run(&devnet.endpoint(), &keys[..4]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the demo needs five funded accounts, got 4"
    );
}
