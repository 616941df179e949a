//! Signed requests checked against what the watcher recorded, with signatures made by a wallet
//! outside this project: anvil's `eth_signTypedData_v4` over typed data written out by hand.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use insitu_bindings::requests::{ServiceRequest, commands};
use insitu_client::{
    demo::{self, DemoReport, Stage},
    devnet::Devnet,
};
use insitu_keeper::{
    executor::now,
    requests::{MAX_DEADLINE_AHEAD, RequestError, verify},
    store::Store,
    watcher::Watcher,
};

struct Setup {
    devnet: Devnet,
    provider: DynProvider,
    keys: Vec<PrivateKeySigner>,
    report: DemoReport,
    store: Store,
}

async fn setup() -> Setup {
    let devnet = Devnet::start().expect("anvil");
    let keys: Vec<PrivateKeySigner> = devnet.signers();
    let report = demo::run_until(&devnet.endpoint(), &keys[..5], Stage::Paid)
        .await
        .expect("demo");
    let provider = ProviderBuilder::new()
        .connect_http(devnet.endpoint().parse().unwrap())
        .erased();
    let mut store = Store::in_memory().unwrap();
    Watcher::new(
        provider.clone(),
        report.deployment.suite().unwrap(),
        keys[2].address(),
        0,
        report.deployment.block,
    )
    .catch_up(&mut store)
    .await
    .unwrap();
    Setup {
        devnet,
        provider,
        keys,
        report,
        store,
    }
}

impl Setup {
    fn request(&self, command: &str, nonce: u64, deadline: u64) -> ServiceRequest {
        ServiceRequest {
            command: command.to_owned(),
            agreementId: self.report.agreement_id,
            did: self.report.did,
            consumer: self.keys[3].address(),
            nonce: U256::from(nonce),
            deadline,
        }
    }

    /// `signer` signs `request` through the node's `eth_signTypedData_v4`, in the domain of
    /// `verifying_contract` on `chain_id`.
    async fn sign(
        &self,
        signer: Address,
        request: &ServiceRequest,
        chain_id: u64,
        verifying_contract: Address,
    ) -> Bytes {
        let typed_data = serde_json::json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"}
                ],
                "ServiceRequest": [
                    {"name": "command", "type": "string"},
                    {"name": "agreementId", "type": "bytes32"},
                    {"name": "did", "type": "bytes32"},
                    {"name": "consumer", "type": "address"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint64"}
                ]
            },
            "primaryType": "ServiceRequest",
            "domain": {
                "name": "insitu.Keeper",
                "version": "1",
                "chainId": chain_id,
                "verifyingContract": verifying_contract.to_string()
            },
            "message": {
                "command": request.command,
                "agreementId": request.agreementId.to_string(),
                "did": request.did.to_string(),
                "consumer": request.consumer.to_string(),
                "nonce": request.nonce.to_string(),
                "deadline": request.deadline
            }
        });
        self.provider
            .raw_request("eth_signTypedData_v4".into(), (signer, typed_data))
            .await
            .expect("eth_signTypedData_v4")
    }

    fn access(&self) -> Address {
        self.report.deployment.address("AccessCondition").unwrap()
    }

    fn verify(
        &mut self,
        command: &'static str,
        request: &ServiceRequest,
        signature: &[u8],
    ) -> Result<(), RequestError> {
        let suite = self.report.deployment.suite().unwrap();
        verify(
            &mut self.store,
            &suite,
            31_337,
            command,
            request,
            signature,
            now(),
        )
        .map(|agreement| assert_eq!(agreement.id, request.agreementId))
    }
}

#[tokio::test]
async fn a_request_signed_by_the_consumer_is_accepted_once() {
    let mut setup = setup().await;
    let consumer = setup.keys[3].address();
    let request = setup.request(commands::ACCESS, 1, now() + 60);
    let signature = setup.sign(consumer, &request, 31_337, setup.access()).await;
    setup
        .verify(commands::ACCESS, &request, &signature)
        .unwrap();
    let replay = setup
        .verify(commands::ACCESS, &request, &signature)
        .unwrap_err();
    assert_eq!(replay.code(), "replayed", "{replay}");
    // Another nonce is another request.
    let next = setup.request(commands::ACCESS, 2, now() + 60);
    let signature = setup.sign(consumer, &next, 31_337, setup.access()).await;
    setup.verify(commands::ACCESS, &next, &signature).unwrap();
    let _ = &setup.devnet;
}

#[tokio::test]
async fn every_bad_request_is_refused_with_its_code_and_spends_no_nonce() {
    let mut setup = setup().await;
    let consumer = setup.keys[3].address();
    let outsider = setup.keys[4].address();
    let access = setup.access();
    let nonce = 7;

    let mut cases: Vec<(&'static str, ServiceRequest, Bytes, &'static str)> = Vec::new();
    // Signed by someone else.
    let request = setup.request(commands::ACCESS, nonce, now() + 60);
    cases.push((
        commands::ACCESS,
        request.clone(),
        setup.sign(outsider, &request, 31_337, access).await,
        "forged",
    ));
    // Signed for another chain, or another verifying contract.
    cases.push((
        commands::ACCESS,
        request.clone(),
        setup.sign(consumer, &request, 1, access).await,
        "forged",
    ));
    cases.push((
        commands::ACCESS,
        request.clone(),
        setup.sign(consumer, &request, 31_337, outsider).await,
        "forged",
    ));
    // Garbage and truncated signatures.
    cases.push((
        commands::ACCESS,
        request.clone(),
        Bytes::from(vec![1; 65]),
        "forged",
    ));
    cases.push((
        commands::ACCESS,
        request.clone(),
        Bytes::from(vec![1; 3]),
        "forged",
    ));
    // A valid signature over a request then altered.
    let signed = setup.sign(consumer, &request, 31_337, access).await;
    let mut altered = request.clone();
    altered.deadline += 1;
    cases.push((commands::ACCESS, altered, signed, "forged"));
    // Deadlines.
    let expired = setup.request(commands::ACCESS, nonce, now() - 1);
    cases.push((
        commands::ACCESS,
        expired.clone(),
        setup.sign(consumer, &expired, 31_337, access).await,
        "expired",
    ));
    let far = setup.request(commands::ACCESS, nonce, now() + MAX_DEADLINE_AHEAD + 60);
    cases.push((
        commands::ACCESS,
        far.clone(),
        setup.sign(consumer, &far, 31_337, access).await,
        "deadline_too_far",
    ));
    // Another command than the endpoint's; the compute command on an access agreement.
    let compute = setup.request(commands::COMPUTE, nonce, now() + 60);
    let compute_signature = setup.sign(consumer, &compute, 31_337, access).await;
    cases.push((
        commands::ACCESS,
        compute.clone(),
        compute_signature.clone(),
        "wrong_command",
    ));
    cases.push((
        commands::COMPUTE,
        compute,
        compute_signature,
        "wrong_template",
    ));
    // Another agreement, asset or consumer.
    let mut unknown = setup.request(commands::ACCESS, nonce, now() + 60);
    unknown.agreementId = B256::repeat_byte(9);
    cases.push((
        commands::ACCESS,
        unknown.clone(),
        setup.sign(consumer, &unknown, 31_337, access).await,
        "unknown_agreement",
    ));
    let mut asset = setup.request(commands::ACCESS, nonce, now() + 60);
    asset.did = B256::repeat_byte(8);
    cases.push((
        commands::ACCESS,
        asset.clone(),
        setup.sign(consumer, &asset, 31_337, access).await,
        "wrong_asset",
    ));
    let mut someone = setup.request(commands::ACCESS, nonce, now() + 60);
    someone.consumer = outsider;
    cases.push((
        commands::ACCESS,
        someone.clone(),
        setup.sign(outsider, &someone, 31_337, access).await,
        "wrong_consumer",
    ));

    for (command, request, signature, code) in cases {
        let error = setup.verify(command, &request, &signature).unwrap_err();
        assert_eq!(error.code(), code, "{error}");
    }
    // None of them spent the nonce.
    let request = setup.request(commands::ACCESS, nonce, now() + 60);
    let signature = setup.sign(consumer, &request, 31_337, access).await;
    setup
        .verify(commands::ACCESS, &request, &signature)
        .unwrap();
}

#[tokio::test]
async fn a_refunded_agreement_is_no_longer_served() {
    let mut setup = setup().await;
    let _: serde_json::Value = setup
        .provider
        .raw_request(
            "evm_increaseTime".into(),
            [demo::OFFER_MAX_TIMEOUT as u64 + 1],
        )
        .await
        .unwrap();
    let _: serde_json::Value = setup
        .provider
        .raw_request("evm_mine".into(), ())
        .await
        .unwrap();
    let endpoint = insitu_client::rpc::Endpoint::parse(&setup.devnet.endpoint()).unwrap();
    let connection = insitu_client::rpc::connect(&endpoint, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("31337.json");
    setup.report.deployment.write(&path).unwrap();
    let suite = insitu_client::suite::Suite::open(connection.clone(), &path)
        .await
        .unwrap();
    let sender = insitu_client::tx::Sender::new(
        connection.provider.clone(),
        connection.chain_id,
        setup.keys[7].clone(),
        insitu_client::tx::TxOptions::default(),
    );
    insitu_client::payments::refund(
        &suite,
        &sender,
        setup.report.agreement_id,
        &insitu_client::tx::Silent,
    )
    .await
    .unwrap();
    Watcher::new(
        setup.provider.clone(),
        setup.report.deployment.suite().unwrap(),
        setup.keys[2].address(),
        0,
        setup.report.deployment.block,
    )
    .catch_up(&mut setup.store)
    .await
    .unwrap();
    // The node's clock moved: sign with a deadline in its time, check at its time.
    let chain_now = setup
        .provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let request = setup.request(commands::ACCESS, 1, chain_now + 60);
    let signature = setup
        .sign(setup.keys[3].address(), &request, 31_337, setup.access())
        .await;
    let suite = setup.report.deployment.suite().unwrap();
    let error = verify(
        &mut setup.store,
        &suite,
        31_337,
        commands::ACCESS,
        &request,
        &signature,
        chain_now,
    )
    .unwrap_err();
    assert_eq!(error.code(), "ended", "{error}");
}
