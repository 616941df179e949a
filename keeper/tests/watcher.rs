//! The watcher and the store against a real anvil node: the demo's agreements (paid, served,
//! refunded) recorded for their keeper and no one else, confirmations, restarts, narrow ranges,
//! and reorgs deeper and shallower than the confirmations (`anvil_reorg`).

mod common;

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use insitu_client::{
    demo::{self, DemoReport, Stage},
    devnet::Devnet,
};
use insitu_keeper::{
    store::{AgreementState, EventKind, Store},
    watcher::{Poll, Watcher},
};

struct Chain {
    devnet: Devnet,
    provider: DynProvider,
    keys: Vec<PrivateKeySigner>,
    report: DemoReport,
}

/// The demo up to `stage` on a new anvil: keeper keys[2], consumer keys[3].
async fn chain(stage: Stage) -> Chain {
    let devnet = Devnet::start().expect("anvil");
    let keys: Vec<PrivateKeySigner> = devnet.signers();
    let report = demo::run_until(&devnet.endpoint(), &keys[..5], stage)
        .await
        .expect("demo");
    let provider = ProviderBuilder::new()
        .connect_http(devnet.endpoint().parse().unwrap())
        .erased();
    Chain {
        devnet,
        provider,
        keys,
        report,
    }
}

impl Chain {
    fn keeper(&self) -> Address {
        self.keys[2].address()
    }

    fn watcher(&self, keeper: Address, confirmations: u64) -> Watcher {
        Watcher::new(
            self.provider.clone(),
            self.report.deployment.suite().unwrap(),
            keeper,
            confirmations,
            self.report.deployment.block,
        )
    }

    async fn rpc(&self, method: &'static str, params: serde_json::Value) {
        common::node_rpc(&self.provider, method, params).await;
    }

    async fn mine(&self, blocks: u64) {
        self.rpc("anvil_mine", serde_json::json!([blocks])).await;
    }

    async fn head(&self) -> u64 {
        self.provider.get_block_number().await.unwrap()
    }
}

#[tokio::test]
async fn a_paid_agreement_is_recorded_with_its_terms_for_its_keeper_only() {
    let chain = chain(Stage::Paid).await;
    let mut store = Store::in_memory().unwrap();
    let mut watcher = chain.watcher(chain.keeper(), 0);
    let recorded = watcher.catch_up(&mut store).await.unwrap();
    assert_eq!(recorded, 2, "created and paid");

    let agreement = store
        .agreement(chain.report.agreement_id)
        .unwrap()
        .expect("recorded");
    let suite = chain.report.deployment.suite().unwrap();
    assert_eq!(agreement.state, AgreementState::Paid);
    assert_eq!(agreement.did, chain.report.did);
    assert_eq!(agreement.consumer, chain.keys[3].address());
    assert_eq!(agreement.template, suite.access_template);
    assert_eq!(agreement.service_contract, suite.access);
    assert_eq!(agreement.terms.provider, chain.keeper());
    assert_eq!(agreement.terms.token, chain.report.token);
    assert_eq!(agreement.terms.receivers, [chain.keys[1].address()]);
    assert_eq!(agreement.terms.amounts, [U256::from(demo::PRICE)]);
    assert_eq!(
        agreement.terms.fee + U256::from(demo::PRICE),
        chain.report.quoted_total
    );
    assert_eq!(agreement.terms.service_timeout, demo::OFFER_MAX_TIMEOUT);
    let kinds: Vec<_> = store
        .events(agreement.id)
        .unwrap()
        .into_iter()
        .map(|(_, kind)| kind)
        .collect();
    assert_eq!(kinds, [EventKind::Created, EventKind::Paid]);
    assert_eq!(
        store.agreements(Some(AgreementState::Paid)).unwrap().len(),
        1
    );
    assert!(
        store
            .agreements(Some(AgreementState::Served))
            .unwrap()
            .is_empty()
    );

    // Another provider's keeper records nothing.
    let mut other = Store::in_memory().unwrap();
    let mut outsider = chain.watcher(chain.keys[6].address(), 0);
    assert_eq!(outsider.catch_up(&mut other).await.unwrap(), 0);
    assert!(other.agreements(None).unwrap().is_empty());
    assert_eq!(other.cursor().unwrap().unwrap().number, chain.head().await);
}

#[tokio::test]
async fn a_served_agreement_is_released_and_an_unserved_one_refunded() {
    let served = chain(Stage::Served).await;
    let mut store = Store::in_memory().unwrap();
    served
        .watcher(served.keeper(), 0)
        .catch_up(&mut store)
        .await
        .unwrap();
    let agreement = store
        .agreement(served.report.agreement_id)
        .unwrap()
        .unwrap();
    assert_eq!(agreement.state, AgreementState::Released);
    let kinds: Vec<_> = store
        .events(agreement.id)
        .unwrap()
        .into_iter()
        .map(|(_, kind)| kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Created,
            EventKind::Paid,
            EventKind::Served,
            EventKind::Released
        ]
    );

    // Not served: after the time out anyone refunds, through the client library.
    let unserved = chain(Stage::Paid).await;
    let mut store = Store::in_memory().unwrap();
    let mut watcher = unserved.watcher(unserved.keeper(), 0);
    watcher.catch_up(&mut store).await.unwrap();
    unserved
        .rpc(
            "evm_increaseTime",
            serde_json::json!([demo::OFFER_MAX_TIMEOUT + 1]),
        )
        .await;
    unserved.mine(1).await;
    let endpoint = insitu_client::rpc::Endpoint::parse(&unserved.devnet.endpoint()).unwrap();
    let connection = insitu_client::rpc::connect(&endpoint, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("31337.json");
    unserved.report.deployment.write(&path).unwrap();
    let suite = insitu_client::suite::Suite::open(connection.clone(), &path)
        .await
        .unwrap();
    let sender = insitu_client::tx::Sender::new(
        connection.provider.clone(),
        connection.chain_id,
        unserved.keys[7].clone(),
        insitu_client::tx::TxOptions::default(),
    );
    insitu_client::payments::refund(
        &suite,
        &sender,
        unserved.report.agreement_id,
        &insitu_client::tx::Silent,
    )
    .await
    .unwrap();
    assert_eq!(watcher.catch_up(&mut store).await.unwrap(), 2);
    let agreement = store
        .agreement(unserved.report.agreement_id)
        .unwrap()
        .unwrap();
    assert_eq!(agreement.state, AgreementState::Refunded);
    let kinds: Vec<_> = store
        .events(agreement.id)
        .unwrap()
        .into_iter()
        .map(|(_, kind)| kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Created,
            EventKind::Paid,
            EventKind::ServiceAborted,
            EventKind::Refunded
        ]
    );
}

#[tokio::test]
async fn nothing_is_recorded_before_it_is_buried_under_the_confirmations() {
    let chain = chain(Stage::Paid).await;
    let head = chain.head().await;
    let mut store = Store::in_memory().unwrap();
    let mut watcher = chain.watcher(chain.keeper(), 3);
    watcher.catch_up(&mut store).await.unwrap();
    // The purchase is the head block: not buried yet.
    assert_eq!(store.cursor().unwrap().unwrap().number, head - 3);
    assert!(store.agreements(None).unwrap().is_empty());
    chain.mine(2).await;
    watcher.catch_up(&mut store).await.unwrap();
    assert!(store.agreements(None).unwrap().is_empty());
    chain.mine(1).await;
    watcher.catch_up(&mut store).await.unwrap();
    assert_eq!(
        store
            .agreement(chain.report.agreement_id)
            .unwrap()
            .unwrap()
            .state,
        AgreementState::Paid
    );
    assert_eq!(store.cursor().unwrap().unwrap().number, head);
}

#[tokio::test]
async fn a_restart_resumes_from_the_cursor_and_narrow_ranges_see_the_same() {
    let chain = chain(Stage::Served).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.db");
    {
        let mut store = Store::open(&path).unwrap();
        let mut watcher = chain.watcher(chain.keeper(), 0).with_max_range(1);
        // One block at a time.
        let first = watcher.poll(&mut store).await.unwrap();
        let start = chain.report.deployment.block;
        assert_eq!(
            first,
            Poll::Scanned {
                from: start,
                to: start,
                recorded: 0
            }
        );
        watcher.catch_up(&mut store).await.unwrap();
    }
    // Reopened: the same state, and nothing recorded twice.
    let mut store = Store::open(&path).unwrap();
    let before = store.events(chain.report.agreement_id).unwrap();
    assert_eq!(before.len(), 4);
    let mut watcher = chain.watcher(chain.keeper(), 0);
    assert_eq!(watcher.catch_up(&mut store).await.unwrap(), 0);
    chain.mine(5).await;
    assert_eq!(watcher.catch_up(&mut store).await.unwrap(), 0);
    assert_eq!(store.events(chain.report.agreement_id).unwrap(), before);

    // A wide scan from scratch records the same.
    let mut fresh = Store::in_memory().unwrap();
    chain
        .watcher(chain.keeper(), 0)
        .catch_up(&mut fresh)
        .await
        .unwrap();
    assert_eq!(fresh.events(chain.report.agreement_id).unwrap(), before);
}

#[tokio::test]
async fn a_reorg_deeper_than_the_confirmations_is_undone_and_rescanned() {
    let chain = chain(Stage::Paid).await;
    let mut store = Store::in_memory().unwrap();
    let mut watcher = chain.watcher(chain.keeper(), 1);
    chain.mine(1).await;
    watcher.catch_up(&mut store).await.unwrap();
    let id = chain.report.agreement_id;
    assert_eq!(
        store.agreement(id).unwrap().unwrap().state,
        AgreementState::Paid
    );
    let head = chain.head().await;
    let purchase = store.events(id).unwrap()[0].0.block_number;
    assert_eq!(purchase, head - 1);

    // Replace the last 3 blocks (the purchase included) with empty ones: deeper than 1.
    chain.rpc("anvil_reorg", serde_json::json!([3, []])).await;
    chain.mine(1).await;
    let poll = watcher.poll(&mut store).await.unwrap();
    let Poll::Reorged { ancestor, affected } = poll else {
        panic!("{poll:?}");
    };
    assert!(ancestor < purchase, "{ancestor} {purchase}");
    assert_eq!(affected, [id]);
    assert!(
        store.agreement(id).unwrap().is_none(),
        "the purchase is gone"
    );
    assert!(store.events(id).unwrap().is_empty());
    watcher.catch_up(&mut store).await.unwrap();
    assert!(store.agreements(None).unwrap().is_empty());
    assert_eq!(
        store.cursor().unwrap().unwrap().number,
        chain.head().await - 1
    );
}

#[tokio::test]
async fn a_reorg_shallower_than_the_confirmations_never_reaches_the_store() {
    let chain = chain(Stage::Paid).await;
    let mut store = Store::in_memory().unwrap();
    let mut watcher = chain.watcher(chain.keeper(), 4);
    chain.mine(4).await;
    watcher.catch_up(&mut store).await.unwrap();
    let id = chain.report.agreement_id;
    let recorded = store.events(id).unwrap();
    assert_eq!(recorded.len(), 2);
    let cursor = store.cursor().unwrap().unwrap();

    // The 3 newest blocks (empty, after the purchase) are replaced: shallower than 4.
    chain.rpc("anvil_reorg", serde_json::json!([3, []])).await;
    let poll = watcher.poll(&mut store).await.unwrap();
    assert!(matches!(poll, Poll::UpToDate { .. }), "{poll:?}");
    assert_eq!(store.cursor().unwrap().unwrap(), cursor);
    chain.mine(3).await;
    watcher.catch_up(&mut store).await.unwrap();
    assert_eq!(store.events(id).unwrap(), recorded);
    assert_eq!(
        store.agreement(id).unwrap().unwrap().state,
        AgreementState::Paid
    );
}

#[tokio::test]
async fn a_reorg_that_drops_the_release_rolls_the_agreement_back_to_paid() {
    // In the demo the agreement and its payment are one transaction and the service and release
    // another: a reorg of the second undoes the release and keeps the payment.
    let chain = chain(Stage::Served).await;
    let mut store = Store::in_memory().unwrap();
    let mut watcher = chain.watcher(chain.keeper(), 0);
    watcher.catch_up(&mut store).await.unwrap();
    let id = chain.report.agreement_id;
    assert_eq!(
        store.agreement(id).unwrap().unwrap().state,
        AgreementState::Released
    );
    // The release is the head block: replace it.
    chain.rpc("anvil_reorg", serde_json::json!([1, []])).await;
    let poll = watcher.poll(&mut store).await.unwrap();
    assert!(
        matches!(poll, Poll::Reorged { ref affected, .. } if affected == &[id]),
        "{poll:?}"
    );
    let agreement = store.agreement(id).unwrap().unwrap();
    assert_eq!(
        agreement.state,
        AgreementState::Paid,
        "back to paid: serve again"
    );
    assert_eq!(store.events(id).unwrap().len(), 2);
    watcher.catch_up(&mut store).await.unwrap();
    assert_eq!(
        store.agreement(id).unwrap().unwrap().state,
        AgreementState::Paid
    );
}

#[tokio::test]
async fn a_reindex_requested_by_the_operator_records_what_a_scan_missed() {
    let chain = chain(Stage::Served).await;
    let mut store = Store::in_memory().unwrap();
    // A scan that saw nothing of this keeper's (as a node answering with empty logs would).
    let mut blind = chain.watcher(Address::repeat_byte(0xee), 0);
    blind.catch_up(&mut store).await.unwrap();
    assert!(store.agreements(None).unwrap().is_empty());
    let head = chain.head().await;
    assert_eq!(store.cursor().unwrap().unwrap().number, head);

    // Requested from before the deployment: the watcher starts again at its first block.
    let seq = store
        .request(
            insitu_keeper::store::RequestKind::Reindex,
            None,
            Some(0),
            "the node dropped logs",
            insitu_keeper::executor::now(),
        )
        .unwrap();
    let mut watcher = chain.watcher(chain.keeper(), 0);
    let poll = watcher.poll(&mut store).await.unwrap();
    assert!(
        matches!(poll, Poll::Reindexed { request, from } if request == seq && from == chain.report.deployment.block),
        "{poll:?}"
    );
    assert_eq!(store.cursor().unwrap(), None);
    assert_eq!(watcher.catch_up(&mut store).await.unwrap(), 4);
    assert_eq!(
        store
            .agreement(chain.report.agreement_id)
            .unwrap()
            .unwrap()
            .state,
        AgreementState::Released
    );

    // From a block inside the scanned range: back to the block before it, with its hash.
    let from = chain.report.deployment.block + 2;
    store
        .request(
            insitu_keeper::store::RequestKind::Reindex,
            None,
            Some(from),
            "again",
            0,
        )
        .unwrap();
    watcher.poll(&mut store).await.unwrap();
    let cursor = store.cursor().unwrap().unwrap();
    assert_eq!(cursor.number, from - 1);
    watcher.catch_up(&mut store).await.unwrap();
    assert_eq!(
        store.events(chain.report.agreement_id).unwrap().len(),
        4,
        "nothing recorded twice"
    );

    // Beyond the scan: nothing to do, and said so.
    let seq = store
        .request(
            insitu_keeper::store::RequestKind::Reindex,
            None,
            Some(head + 100),
            "early",
            0,
        )
        .unwrap();
    watcher.poll(&mut store).await.unwrap();
    let request = store.operator_request(seq).unwrap().unwrap();
    assert!(
        request
            .result
            .unwrap()
            .starts_with("applied: nothing to scan again, the scan has not passed block"),
    );
    assert_eq!(store.cursor().unwrap().unwrap().number, head);
}
