//! The executor against a real anvil node: a paid agreement settled exactly once, through crashes
//! at each named point, a nonce taken by another transaction, a stuck transaction replaced with
//! higher fees, a settlement reorged out, and the refusals (timed out, already settled).

mod common;

use alloy::{
    network::TransactionBuilder,
    primitives::{B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use insitu_bindings::AgreementStore;
use insitu_client::{
    demo::{self, DemoReport, Stage},
    devnet::Devnet,
};
use insitu_keeper::{
    executor::{CrashPoint, ExecuteError, Executor, Step, now},
    store::{ActionState, AgreementState, Store},
    watcher::Watcher,
};

/// `ConditionState.Released`.
const RELEASED: u8 = 4;

struct Chain {
    _devnet: Devnet,
    provider: DynProvider,
    keys: Vec<PrivateKeySigner>,
    report: DemoReport,
    _dir: tempfile::TempDir,
    database: std::path::PathBuf,
}

async fn chain(stage: Stage) -> Chain {
    let devnet = Devnet::start().expect("anvil");
    let keys: Vec<PrivateKeySigner> = devnet.signers();
    let report = demo::run_until(&devnet.endpoint(), &keys[..5], stage)
        .await
        .expect("demo");
    let provider = ProviderBuilder::new()
        .connect_http(devnet.endpoint().parse().unwrap())
        .erased();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("keeper.db");
    let chain = Chain {
        _devnet: devnet,
        provider,
        keys,
        report,
        _dir: dir,
        database,
    };
    let mut store = chain.store();
    chain.watcher().catch_up(&mut store).await.unwrap();
    chain
}

impl Chain {
    fn store(&self) -> Store {
        Store::open(&self.database).unwrap()
    }

    fn watcher(&self) -> Watcher {
        Watcher::new(
            self.provider.clone(),
            self.report.deployment.suite().unwrap(),
            self.keys[2].address(),
            0,
            self.report.deployment.block,
        )
    }

    /// An executor for which a mined transaction is enough (no confirmations).
    fn executor(&self, crash: Option<CrashPoint>) -> Executor {
        Executor::new(
            self.provider.clone(),
            31_337,
            self.keys[2].clone(),
            self.report.deployment.suite().unwrap(),
            0,
        )
        .with_crash_point(crash)
    }

    fn id(&self) -> B256 {
        self.report.agreement_id
    }

    async fn keeper_nonce(&self) -> u64 {
        self.provider
            .get_transaction_count(self.keys[2].address())
            .await
            .unwrap()
    }

    async fn payment_state(&self, store: &Store) -> u8 {
        let agreement = store.agreement(self.id()).unwrap().unwrap();
        let suite = self.report.deployment.suite().unwrap();
        AgreementStore::new(suite.agreement_store, &self.provider)
            .getCondition(agreement.payment_condition)
            .call()
            .await
            .unwrap()
            .state
    }

    async fn rpc(&self, method: &'static str, params: serde_json::Value) {
        common::node_rpc(&self.provider, method, params).await;
    }

    /// Ticks a fresh executor until the action ends; returns every step.
    async fn settle(&self, store: &mut Store) -> Vec<Step> {
        let executor = self.executor(None);
        let mut steps = Vec::new();
        for _ in 0..10 {
            steps.extend(executor.tick(store).await.unwrap());
            let action = store.action(self.id()).unwrap().unwrap();
            if matches!(
                action.state,
                ActionState::Confirmed | ActionState::Done | ActionState::Failed
            ) {
                return steps;
            }
        }
        panic!("not settled: {steps:?}");
    }
}

#[tokio::test]
async fn a_paid_agreement_is_settled_once() {
    let chain = chain(Stage::Paid).await;
    let mut store = chain.store();
    assert!(store.intend(chain.id(), now()).unwrap());
    assert!(
        !store.intend(chain.id(), now()).unwrap(),
        "one action per agreement"
    );
    // Behind one confirmation: mined is not enough, one block on top is.
    let executor = Executor::new(
        chain.provider.clone(),
        31_337,
        chain.keys[2].clone(),
        chain.report.deployment.suite().unwrap(),
        1,
    );
    let steps = executor.tick(&mut store).await.unwrap();
    assert!(
        matches!(steps[..], [Step::Sent { nonce: 0, .. }]),
        "{steps:?}"
    );
    // Automined, and then followed while it has no block on top.
    let mut waited = 0;
    while chain.payment_state(&store).await != RELEASED {
        assert!(waited < 50, "never mined");
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(executor.tick(&mut store).await.unwrap().is_empty());
    assert_eq!(
        store.action(chain.id()).unwrap().unwrap().state,
        ActionState::Sent
    );
    chain.rpc("evm_mine", serde_json::json!([])).await;
    let steps = executor.tick(&mut store).await.unwrap();
    assert!(matches!(steps[..], [Step::Confirmed { .. }]), "{steps:?}");
    let action = store.action(chain.id()).unwrap().unwrap();
    assert_eq!(action.state, ActionState::Confirmed);
    assert!(action.block.is_some());
    assert_eq!(chain.payment_state(&store).await, RELEASED);
    assert_eq!(chain.keeper_nonce().await, 1);

    // The watcher sees it released; nothing more is sent.
    chain.watcher().catch_up(&mut store).await.unwrap();
    assert_eq!(
        store.agreement(chain.id()).unwrap().unwrap().state,
        AgreementState::Released
    );
    assert!(
        chain
            .executor(None)
            .tick(&mut store)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(chain.keeper_nonce().await, 1);
}

#[tokio::test]
async fn a_crash_at_any_point_is_recovered_and_settles_exactly_once() {
    for point in [
        CrashPoint::AfterSign,
        CrashPoint::AfterSend,
        CrashPoint::AfterReceipt,
    ] {
        let chain = chain(Stage::Paid).await;
        {
            let mut store = chain.store();
            store.intend(chain.id(), now()).unwrap();
            let executor = chain.executor(Some(point));
            let mut crashed = None;
            // A few ticks reach any point; more, spaced, leave room for a loaded machine whose
            // node serves the receipt a moment late.
            for _ in 0..50 {
                match executor.tick(&mut store).await {
                    Err(ExecuteError::Crashed(at)) => {
                        crashed = Some(at);
                        break;
                    }
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                    Err(error) => panic!("{error}"),
                }
            }
            assert_eq!(crashed, Some(point));
            // The process dies here: the store is dropped with what it recorded.
        }
        let mut store = chain.store();
        let signed = store.attempts(chain.id()).unwrap();
        assert_eq!(signed.len(), 1, "{point:?}: recorded before broadcast");
        let steps = chain.settle(&mut store).await;
        let action = store.action(chain.id()).unwrap().unwrap();
        assert_eq!(action.state, ActionState::Confirmed, "{point:?}: {steps:?}");
        assert_eq!(
            action.tx_hash,
            Some(signed[0].tx_hash),
            "{point:?}: the same transaction"
        );
        assert_eq!(chain.payment_state(&store).await, RELEASED, "{point:?}");
        assert_eq!(
            chain.keeper_nonce().await,
            1,
            "{point:?}: one transaction in all"
        );
    }
}

#[tokio::test]
async fn a_nonce_taken_by_another_transaction_is_decided_again() {
    let chain = chain(Stage::Paid).await;
    {
        let mut store = chain.store();
        store.intend(chain.id(), now()).unwrap();
        let result = chain
            .executor(Some(CrashPoint::AfterSign))
            .tick(&mut store)
            .await;
        assert!(matches!(result, Err(ExecuteError::Crashed(_))));
    }
    // Meanwhile the keeper's key sends something else with that nonce.
    let wallet = alloy::network::EthereumWallet::from(chain.keys[2].clone());
    let sender = ProviderBuilder::new()
        .wallet(wallet)
        .connect_provider(chain.provider.clone());
    sender
        .send_transaction(
            TransactionRequest::default()
                .with_to(chain.keys[9].address())
                .with_value(U256::from(1)),
        )
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(chain.keeper_nonce().await, 1);

    let mut store = chain.store();
    let signed = store.attempts(chain.id()).unwrap()[0].clone();
    let steps = chain.settle(&mut store).await;
    assert!(
        steps
            .iter()
            .any(|step| matches!(step, Step::Reopened { .. })),
        "{steps:?}"
    );
    let action = store.action(chain.id()).unwrap().unwrap();
    assert_eq!(action.state, ActionState::Confirmed);
    assert_ne!(action.tx_hash, Some(signed.tx_hash));
    assert_eq!(action.nonce, Some(1));
    assert_eq!(chain.payment_state(&store).await, RELEASED);
    assert_eq!(chain.keeper_nonce().await, 2);
}

#[tokio::test]
async fn a_stuck_transaction_is_replaced_with_higher_fees() {
    let chain = chain(Stage::Paid).await;
    chain
        .rpc("evm_setAutomine", serde_json::json!([false]))
        .await;
    let mut store = chain.store();
    store.intend(chain.id(), now()).unwrap();
    let executor = chain
        .executor(None)
        .with_fees(std::time::Duration::ZERO, u128::MAX);
    let steps = executor.tick(&mut store).await.unwrap();
    assert!(matches!(steps[..], [Step::Sent { .. }]), "{steps:?}");
    let steps = executor.tick(&mut store).await.unwrap();
    assert!(matches!(steps[..], [Step::Bumped { .. }]), "{steps:?}");
    let attempts = store.attempts(chain.id()).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].nonce, attempts[1].nonce);
    assert!(attempts[0].max_fee_per_gas >= attempts[1].max_fee_per_gas * 1_125 / 1_000);
    assert!(
        attempts[0].max_priority_fee_per_gas
            >= attempts[1].max_priority_fee_per_gas * 1_125 / 1_000
    );
    chain.rpc("evm_mine", serde_json::json!([])).await;
    let steps = executor.tick(&mut store).await.unwrap();
    assert!(matches!(steps[..], [Step::Confirmed { .. }]), "{steps:?}");
    let action = store.action(chain.id()).unwrap().unwrap();
    assert_eq!(
        action.tx_hash,
        Some(attempts[0].tx_hash),
        "the replacement was mined"
    );
    assert_eq!(chain.payment_state(&store).await, RELEASED);
    assert_eq!(chain.keeper_nonce().await, 1);
}

#[tokio::test]
async fn a_settlement_reorged_out_is_sent_again_and_settled_once() {
    let chain = chain(Stage::Paid).await;
    let mut store = chain.store();
    store.intend(chain.id(), now()).unwrap();
    chain.settle(&mut store).await;
    assert_eq!(chain.payment_state(&store).await, RELEASED);
    // The block with the settlement is replaced by an empty one.
    chain.rpc("anvil_reorg", serde_json::json!([1, []])).await;
    assert_ne!(chain.payment_state(&store).await, RELEASED);
    let steps = chain.settle(&mut store).await;
    assert!(
        matches!(steps.last(), Some(Step::Confirmed { .. })),
        "{steps:?}"
    );
    assert_eq!(chain.payment_state(&store).await, RELEASED);
    assert_eq!(chain.keeper_nonce().await, 1, "the same transaction, once");
}

#[tokio::test]
async fn nothing_is_sent_for_a_settled_or_timed_out_agreement() {
    // Already served and released (by the demo's keeper script): done, nothing sent.
    let served = chain(Stage::Served).await;
    let mut store = served.store();
    let sent = served.keeper_nonce().await;
    store.intend(served.id(), now()).unwrap();
    let steps = served.settle(&mut store).await;
    assert!(matches!(steps[..], [Step::Done { .. }]), "{steps:?}");
    assert_eq!(served.keeper_nonce().await, sent);

    // Paid but the service timed out: refused with the reason, nothing sent.
    let late = chain(Stage::Paid).await;
    late.rpc(
        "evm_increaseTime",
        serde_json::json!([demo::OFFER_MAX_TIMEOUT + 1]),
    )
    .await;
    late.rpc("evm_mine", serde_json::json!([])).await;
    let mut store = late.store();
    store.intend(late.id(), now()).unwrap();
    let steps = late.settle(&mut store).await;
    assert!(
        matches!(&steps[..], [Step::Failed { reason, .. }] if reason == "the service timed out"),
        "{steps:?}"
    );
    assert_eq!(late.keeper_nonce().await, 0);

    // An agreement this keeper does not have.
    let mut store = late.store();
    let unknown = B256::repeat_byte(7);
    store.intend(unknown, now()).unwrap();
    let steps = late.executor(None).tick(&mut store).await.unwrap();
    assert!(
        matches!(&steps[..], [Step::Failed { reason, .. }] if reason.contains("no such agreement")),
        "{steps:?}"
    );
}
