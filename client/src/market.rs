//! The publisher's and the consumer's paths through a provider's keeper: publish an asset, buy
//! it on the keeper's signed offer, download it with a signed request.
//!
//! Everything that can be checked is checked before gas is spent: the metadata document against
//! its schema, the document served against the checksum on chain, the offer's signature and its
//! terms against the document, the price against the quote.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use alloy::{
    eips::BlockNumberOrTag,
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256, hex, keccak256},
    providers::Provider,
    rpc::types::TransactionRequest,
    signers::SignerSync,
    sol_types::SolCall,
};
use insitu_bindings::{
    AssetRegistry, MockERC20, PaymentCondition, ServiceTemplate,
    offers::{self, Offer},
    requests::{self, ServiceRequest, commands},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    agreement,
    metadata::{self, MetadataDocument, MetadataError, ServiceKind},
    suite::Suite,
    tx::{Progress, Sender, TxError},
};

/// Largest answer read from a keeper's API where it is read whole (an offer, an error): a keeper is
/// whoever a publisher names, and may answer with anything.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The body of `response`, refused past `limit` bytes.
///
/// # Errors
///
/// [`MarketError::BadAnswer`] past the limit or when the transfer fails.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, MarketError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(MarketError::BadAnswer(format!(
            "the answer is larger than {limit} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| MarketError::BadAnswer(crate::rpc::error_chain(&error)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(MarketError::BadAnswer(format!(
                "the answer is larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How long a download request stays valid, seconds.
pub const REQUEST_VALIDITY: u64 = 300;
/// How long a download keeps asking while the keeper says the purchase is not confirmed yet or
/// its settlement is under way.
pub const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(180);

/// Why a publication, purchase or download failed. Unless the error is [`MarketError::Tx`],
/// nothing was sent on chain.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The metadata document is refused (with every field).
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The keeper could not be reached.
    #[error("the keeper at {url} is unreachable: {reason}")]
    KeeperUnreachable {
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The keeper refused the request.
    #[error("the keeper refused ({status}, {code}): {message}{}", field_list(.fields))]
    Refused {
        /// HTTP status.
        status: u16,
        /// The keeper's stable code.
        code: String,
        /// Its message.
        message: String,
        /// The offending fields of a refused document (`invalid_metadata`).
        fields: Vec<FieldProblem>,
    },
    /// The keeper's answer is not what it should be.
    #[error("the keeper's answer is invalid: {0}")]
    BadAnswer(String),
    /// The asset is not registered, or has no keeper URL.
    #[error("asset {0} is not registered")]
    UnknownAsset(B256),
    /// The document served does not hash to the checksum on chain.
    #[error(
        "the metadata document at {url} hashes to {served}, not to the {registered} registered on chain"
    )]
    ChecksumMismatch {
        /// Where it was fetched.
        url: String,
        /// Its hash.
        served: B256,
        /// The chain's.
        registered: B256,
    },
    /// The offer does not match the document, the chain or its signature.
    #[error("the keeper's offer is not acceptable: {0}")]
    BadOffer(String),
    /// The download does not hash to the document's SHA-256.
    #[error("the downloaded file's SHA-256 is {got}, the document says {expected}; kept at {}", path.display())]
    ContentMismatch {
        /// What it hashed to.
        got: String,
        /// What the document says.
        expected: String,
        /// Where the bytes are.
        path: PathBuf,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agreement could not be read.
    #[error(transparent)]
    Agreement(#[from] agreement::AgreementError),
    /// A read of the chain failed.
    #[error("reading the chain: {0}")]
    Call(Box<alloy::contract::Error>),
    /// A call the purchase depends on reverts (e.g. the template refuses the offer).
    #[error("the contracts refuse it: {0}")]
    Reverts(insitu_bindings::errors::Revert),
    /// The node failed.
    #[error("RPC error: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// A transaction failed.
    #[error(transparent)]
    Tx(#[from] TxError),
}

impl From<alloy::contract::Error> for MarketError {
    fn from(error: alloy::contract::Error) -> Self {
        match error.as_revert_data() {
            Some(data) => Self::Reverts(insitu_bindings::errors::decode_revert(&data)),
            None => Self::Call(Box::new(error)),
        }
    }
}

/// The keeper's identity (`GET /v1/info`): its first chain's at the top level, every chain's in
/// `chains`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeeperInfo {
    /// Chain id of the keeper's first chain.
    pub chain_id: u64,
    /// The keeper's account on it.
    pub address: Address,
    /// Its public key, hex.
    pub public_key: String,
    /// Every chain the keeper serves, with its account and public key there.
    #[serde(default)]
    pub chains: Vec<KeeperChain>,
}

/// The keeper's identity on one chain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeeperChain {
    /// Chain id.
    pub chain_id: u64,
    /// The keeper's account on it.
    pub address: Address,
    /// Its public key, hex: file locations for this chain are sealed to it.
    pub public_key: String,
}

impl KeeperInfo {
    /// The keeper's identity on chain `chain_id`, if it serves it.
    pub fn chain(&self, chain_id: u64) -> Option<KeeperChain> {
        self.chains
            .iter()
            .find(|chain| chain.chain_id == chain_id)
            .cloned()
            .or_else(|| {
                (self.chain_id == chain_id).then(|| KeeperChain {
                    chain_id,
                    address: self.address,
                    public_key: self.public_key.clone(),
                })
            })
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
    #[serde(default)]
    fields: Vec<FieldProblem>,
}

/// `fields` for an error message: empty, or `: PATH: WHAT; PATH: WHAT`.
fn field_list(fields: &[FieldProblem]) -> String {
    if fields.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = fields
        .iter()
        .map(|field| format!("{}: {}", field.path, field.message))
        .collect();
    format!(": {}", listed.join("; "))
}

/// One offending field of a document the keeper refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldProblem {
    /// JSON pointer to the field.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct StoredBody {
    checksum: B256,
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OfferBody {
    did: B256,
    checksum: B256,
    provider: Address,
    token: Address,
    receivers: Vec<Address>,
    amounts: Vec<String>,
    min_service_timeout: u32,
    max_service_timeout: u32,
    expiry: u64,
    epoch: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedOfferBody {
    offer: OfferBody,
    signature: Bytes,
    template: Address,
    chain_id: u64,
}

/// A client of one keeper's API.
#[derive(Debug, Clone)]
pub struct KeeperClient {
    base: String,
    pub(crate) http: reqwest::Client,
}

impl KeeperClient {
    /// A client of the keeper at `base` (`https://keeper.example`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// A client of the keeper at `base` that makes its requests with `http` (a client behind an
    /// outbound guard, say).
    pub fn with_http(base: &str, http: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// The keeper whose API serves the document at `metadata_url` (`<base>/v1/metadata/<hash>`).
    pub fn for_metadata_url(metadata_url: &str) -> Option<Self> {
        metadata_url
            .split_once("/v1/metadata/")
            .map(|(base, _)| Self::new(base))
    }

    /// Its base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn unreachable(&self, error: &reqwest::Error) -> MarketError {
        MarketError::KeeperUnreachable {
            url: self.base.clone(),
            reason: crate::rpc::error_chain(error),
        }
    }

    pub(crate) async fn check(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, MarketError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let (code, message, fields) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (body.code, body.message, body.fields),
            Err(_) => ("http_error".to_owned(), text, Vec::new()),
        };
        Err(MarketError::Refused {
            status,
            code,
            message,
            fields,
        })
    }

    /// `GET /v1/info`.
    ///
    /// # Errors
    ///
    /// [`MarketError`].
    pub async fn info(&self) -> Result<KeeperInfo, MarketError> {
        let response = self
            .http
            .get(format!("{}/v1/info", self.base))
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        self.check(response)
            .await?
            .json()
            .await
            .map_err(|error| MarketError::BadAnswer(error.to_string()))
    }

    /// Fetches the bytes at `url` (a metadata document).
    async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, MarketError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        Ok(self
            .check(response)
            .await?
            .bytes()
            .await
            .map_err(|error| self.unreachable(&error))?
            .to_vec())
    }
}

/// A published asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// Its id.
    pub did: B256,
    /// The document's checksum, on chain.
    pub checksum: B256,
    /// Where the keeper serves the document, on chain.
    pub url: String,
    /// The registration transaction.
    pub transaction: B256,
}

/// Publishes the asset described by `source` (a metadata document whose file locations are
/// plain URLs) at `keeper`: seals every location to the keeper's key, validates the result (every
/// offending field is reported before anything is sent), has the keeper store it (the sender must
/// be one of its publishers; the keeper checks it can serve every file), then registers the asset
/// on chain with the keeper as its provider.
///
/// # Errors
///
/// [`MarketError`].
pub async fn publish(
    suite: &Suite,
    sender: &Sender,
    keeper: &KeeperClient,
    source: &[u8],
    seed: B256,
    progress: &dyn Progress,
) -> Result<Published, MarketError> {
    publish_as(suite, sender, keeper, source, seed, None, progress).await
}

/// What a derived asset was made from, registered on chain with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// The assets it was derived from; the sender must be able to serve each (own it, provide
    /// it or be its delegate).
    pub sources: Vec<B256>,
    /// The activity that made it (its `wasGeneratedBy`).
    pub activity: B256,
}

/// Publishes, as [`publish`] does, an asset derived from others: the registration
/// (`registerDerived`) records `derivation`'s activity and sources as its provenance. Before
/// anything is stored or sent, the sender must be able to serve every source.
///
/// # Errors
///
/// [`MarketError`]; [`MarketError::BadAnswer`] for a source the sender cannot serve.
pub async fn publish_derived(
    suite: &Suite,
    sender: &Sender,
    keeper: &KeeperClient,
    source: &[u8],
    seed: B256,
    derivation: &Derivation,
    progress: &dyn Progress,
) -> Result<Published, MarketError> {
    let registry = AssetRegistry::new(suite.addresses.asset_registry, suite.provider());
    if derivation.sources.is_empty() {
        return Err(MetadataError::Invalid(vec![metadata::FieldError {
            path: String::new(),
            message: "a derived asset needs at least one source".to_owned(),
        }])
        .into());
    }
    for did in &derivation.sources {
        if !registry
            .canServe(*did, sender.signer().address())
            .call()
            .await?
        {
            return Err(MarketError::BadAnswer(format!(
                "{} cannot serve source {did}: only its owner, providers and delegates may \
                 derive from it",
                sender.signer().address()
            )));
        }
    }
    publish_as(
        suite,
        sender,
        keeper,
        source,
        seed,
        Some(derivation),
        progress,
    )
    .await
}

/// [`publish`] and [`publish_derived`].
async fn publish_as(
    suite: &Suite,
    sender: &Sender,
    keeper: &KeeperClient,
    source: &[u8],
    seed: B256,
    derivation: Option<&Derivation>,
    progress: &dyn Progress,
) -> Result<Published, MarketError> {
    let chain_id = suite.connection.chain_id;
    let info = keeper.info().await?.chain(chain_id).ok_or_else(|| {
        MarketError::BadAnswer(format!("the keeper does not serve chain {chain_id}"))
    })?;
    let public_key = info
        .public_key
        .strip_prefix("0x")
        .and_then(|text| hex::decode(text).ok())
        .ok_or_else(|| MarketError::BadAnswer("the keeper's public key is not hex".to_owned()))?;
    let mut document: serde_json::Value = serde_json::from_slice(source)
        .map_err(|error| MetadataError::NotJson(error.to_string()))?;
    if let Some(files) = document
        .get_mut("files")
        .and_then(|files| files.as_array_mut())
    {
        for (index, file) in files.iter_mut().enumerate() {
            let Some(object) = file.as_object_mut() else {
                continue;
            };
            // The draft's `headers` are sealed with the location and never stored in clear.
            let headers = match object.remove("headers") {
                None => Default::default(),
                Some(headers) => serde_json::from_value(headers).map_err(|_| {
                    MetadataError::Invalid(vec![metadata::FieldError {
                        path: format!("/files/{index}/headers"),
                        message: "headers are an object of header names to text values".to_owned(),
                    }])
                })?,
            };
            if let Some(url) = object.get("location").and_then(|value| value.as_str()) {
                let location = metadata::Location {
                    url: url.to_owned(),
                    headers,
                };
                let sealed = metadata::seal_location(&location, &public_key).map_err(|error| {
                    MetadataError::Invalid(vec![metadata::FieldError {
                        path: format!("/files/{index}/location"),
                        message: error.to_string(),
                    }])
                })?;
                object.insert("location".to_owned(), serde_json::Value::String(sealed));
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(&document)
        .map_err(|error| MetadataError::NotJson(error.to_string()))?;
    metadata::parse(&bytes)?;
    let checksum = metadata::checksum(&bytes);
    let signature = sender
        .signer()
        .sign_message_sync(checksum.as_slice())
        .map_err(|error| MarketError::BadAnswer(error.to_string()))?;
    let response = keeper
        .http
        .put(format!("{}/v1/metadata?chain={chain_id}", keeper.base))
        .header("content-type", "application/json")
        .header(
            "x-insitu-publisher-signature",
            format!("0x{}", hex::encode(signature.as_bytes())),
        )
        .body(bytes)
        .send()
        .await
        .map_err(|error| keeper.unreachable(&error))?;
    let stored: StoredBody = keeper
        .check(response)
        .await?
        .json()
        .await
        .map_err(|error| MarketError::BadAnswer(error.to_string()))?;
    if stored.checksum != checksum {
        return Err(MarketError::BadAnswer(format!(
            "the keeper stored {} for a document hashing to {checksum}",
            stored.checksum
        )));
    }
    let input = match derivation {
        None => AssetRegistry::registerCall {
            seed,
            checksum,
            url: stored.url.clone(),
            providers: vec![info.address],
        }
        .abi_encode(),
        Some(derivation) => AssetRegistry::registerDerivedCall {
            seed,
            checksum,
            url: stored.url.clone(),
            providers: vec![info.address],
            sources: derivation.sources.clone(),
            activityId: derivation.activity,
        }
        .abi_encode(),
    };
    let request = TransactionRequest::default()
        .with_to(suite.addresses.asset_registry)
        .with_input(input);
    let receipt = sender.send("register the asset", request, progress).await?;
    let did = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<AssetRegistry::AssetRegistered>().ok())
        .map(|log| log.inner.data.did)
        .ok_or_else(|| MarketError::BadAnswer("no AssetRegistered event".to_owned()))?;
    Ok(Published {
        did,
        checksum,
        url: stored.url,
        transaction: receipt.transaction_hash,
    })
}

/// The asset's metadata document, fetched from the URL on chain and checked against the
/// checksum on chain, with the keeper that serves it.
///
/// # Errors
///
/// [`MarketError::UnknownAsset`], [`MarketError::ChecksumMismatch`] or a fetch error.
pub async fn fetch_document(
    suite: &Suite,
    did: B256,
) -> Result<(MetadataDocument, KeeperClient, B256), MarketError> {
    let registry = AssetRegistry::new(suite.addresses.asset_registry, suite.provider());
    let asset = registry.getAsset(did).call().await?;
    if asset.owner.is_zero() {
        return Err(MarketError::UnknownAsset(did));
    }
    let keeper = KeeperClient::for_metadata_url(&asset.url).ok_or_else(|| {
        MarketError::BadAnswer(format!("{} is not a keeper's metadata URL", asset.url))
    })?;
    let bytes = keeper.get_bytes(&asset.url).await?;
    let served = keccak256(&bytes);
    if served != asset.checksum {
        return Err(MarketError::ChecksumMismatch {
            url: asset.url,
            served,
            registered: asset.checksum,
        });
    }
    Ok((metadata::parse(&bytes)?, keeper, asset.checksum))
}

/// A quote for a purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    /// The asset.
    pub did: B256,
    /// The payment token.
    pub token: Address,
    /// The price (the sum of the receivers' amounts).
    pub price: U256,
    /// The network fee.
    pub fee: U256,
    /// What the consumer pays.
    pub total: U256,
    /// The service time out the purchase uses, seconds.
    pub service_timeout: u32,
    /// The agreement the purchase will create.
    pub agreement_id: B256,
}

/// A purchase made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bought {
    /// What was paid.
    pub quote: Quote,
    /// The approval, when one was needed.
    pub approval: Option<B256>,
    /// The purchase.
    pub transaction: B256,
}

/// A purchase ready to be signed and sent by the buyer: the quote, the approval of the payment
/// token when the buyer's allowance is short, and the transaction that creates the agreement and
/// pays into escrow (refusing to pay more than the quote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Purchase {
    /// What will be paid.
    pub quote: Quote,
    /// `approve(payment condition, total)` on the token, when needed.
    pub approval: Option<TransactionRequest>,
    /// `createAgreementAndPay` on the payment condition.
    pub create: TransactionRequest,
}

/// Prepares the purchase of `service` of asset `did` (whose checked document and checksum are
/// `document` and `checksum`, served by `keeper`) by `buyer`: gets the keeper's signed offer and
/// checks it (signer, asset, checksum, terms equal to the document's, and the template's own
/// `checkOffer`), quotes it on chain, and builds the transactions. Nothing is sent.
/// `service_timeout` 0 takes the offer's longest.
///
/// # Errors
///
/// [`MarketError`].
#[allow(clippy::too_many_arguments)]
pub async fn prepare_purchase(
    suite: &Suite,
    keeper: &KeeperClient,
    document: &MetadataDocument,
    checksum: B256,
    did: B256,
    buyer: Address,
    service: ServiceKind,
    service_timeout: u32,
) -> Result<Purchase, MarketError> {
    let terms = document
        .service(service)
        .ok_or_else(|| MarketError::BadOffer(format!("the asset is not sold with {service:?}")))?;
    let kind = match service {
        ServiceKind::Access => "access",
        ServiceKind::Compute => "compute",
    };
    let response = keeper
        .http
        .get(format!(
            "{}/v1/offers/{did}?service={kind}&chain={}",
            keeper.base, suite.connection.chain_id
        ))
        .send()
        .await
        .map_err(|error| keeper.unreachable(&error))?;
    let body = read_capped(keeper.check(response).await?, MAX_ANSWER_BYTES).await?;
    let signed: SignedOfferBody = serde_json::from_slice(&body)
        .map_err(|error| MarketError::BadAnswer(format!("the keeper's offer: {error}")))?;
    let (domain_name, template) = match service {
        ServiceKind::Access => (
            offers::ACCESS_TEMPLATE_DOMAIN,
            suite.addresses.access_template,
        ),
        ServiceKind::Compute => (
            offers::COMPUTE_TEMPLATE_DOMAIN,
            suite.addresses.compute_template,
        ),
    };
    let amounts = signed
        .offer
        .amounts
        .iter()
        .map(|amount| amount.parse::<U256>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| MarketError::BadOffer("an amount is not a number".to_owned()))?;
    let offer = Offer {
        did: signed.offer.did,
        checksum: signed.offer.checksum,
        provider: signed.offer.provider,
        token: signed.offer.token,
        receivers: signed.offer.receivers.clone(),
        amounts,
        minServiceTimeout: signed.offer.min_service_timeout,
        maxServiceTimeout: signed.offer.max_service_timeout,
        expiry: signed.offer.expiry,
        epoch: signed.offer.epoch,
    };
    let (receivers, amounts) = terms.receivers_and_amounts();
    let problems = [
        (
            signed.chain_id != suite.connection.chain_id,
            "another chain",
        ),
        (signed.template != template, "another template"),
        (offer.did != did, "another asset"),
        (offer.checksum != checksum, "another metadata document"),
        (
            offer.token != terms.token,
            "another token than the document's",
        ),
        (
            offer.receivers != receivers || offer.amounts != amounts,
            "another price than the document's",
        ),
        (
            offer.minServiceTimeout != terms.timeout.min
                || offer.maxServiceTimeout != terms.timeout.max,
            "other time outs than the document's",
        ),
    ];
    if let Some((_, problem)) = problems.iter().find(|(wrong, _)| *wrong) {
        return Err(MarketError::BadOffer(format!("it is for {problem}")));
    }
    let domain = offers::domain(domain_name, suite.connection.chain_id, template);
    let signer = alloy::primitives::Signature::try_from(signed.signature.as_ref())
        .ok()
        .and_then(|signature| {
            signature
                .recover_address_from_prehash(&offers::signing_hash(&offer, &domain))
                .ok()
        });
    if signer != Some(offer.provider) {
        return Err(MarketError::BadOffer(
            "its signature is not the provider's".to_owned(),
        ));
    }
    let seed = B256::from(rand::random::<[u8; 32]>());
    let template_contract = ServiceTemplate::new(template, suite.provider());
    let preview = template_contract
        .previewAgreement(seed, buyer, offer.clone(), service_timeout)
        .call()
        .await?;
    let quote = Quote {
        did,
        token: offer.token,
        price: preview.total - preview.fee,
        fee: preview.fee,
        total: preview.total,
        service_timeout: preview.serviceTimeout,
        agreement_id: preview.agreementId,
    };
    template_contract
        .checkOffer(offer.clone(), signed.signature.clone())
        .call()
        .await?;
    let mut approval = None;
    let value = if offer.token.is_zero() {
        quote.total
    } else {
        let token = MockERC20::new(offer.token, suite.provider());
        let allowance = token
            .allowance(buyer, suite.addresses.payment)
            .call()
            .await?;
        if allowance < quote.total {
            approval = Some(
                TransactionRequest::default()
                    .with_from(buyer)
                    .with_to(offer.token)
                    .with_input(
                        MockERC20::approveCall {
                            spender: suite.addresses.payment,
                            value: quote.total,
                        }
                        .abi_encode(),
                    ),
            );
        }
        U256::ZERO
    };
    let call = PaymentCondition::createAgreementAndPayCall {
        template,
        seed,
        offer: offer.into(),
        signature: signed.signature,
        serviceTimeout: service_timeout,
        maxTotal: quote.total,
    };
    let create = TransactionRequest::default()
        .with_from(buyer)
        .with_to(suite.addresses.payment)
        .with_value(value)
        .with_input(call.abi_encode());
    Ok(Purchase {
        quote,
        approval,
        create,
    })
}

/// Buys `service` of asset `did`: fetches and checks the document, prepares the purchase on the
/// keeper's offer ([`prepare_purchase`]), approves exactly the total when the allowance is short,
/// and creates the agreement paying into escrow in one transaction, refusing to pay more than the
/// quote. `service_timeout` 0 takes the offer's longest.
///
/// # Errors
///
/// [`MarketError`].
pub async fn buy(
    suite: &Suite,
    sender: &Sender,
    did: B256,
    service: ServiceKind,
    service_timeout: u32,
    progress: &dyn Progress,
) -> Result<Bought, MarketError> {
    let (document, keeper, checksum) = fetch_document(suite, did).await?;
    let purchase = prepare_purchase(
        suite,
        &keeper,
        &document,
        checksum,
        did,
        sender.address(),
        service,
        service_timeout,
    )
    .await?;
    let approval = match purchase.approval {
        Some(request) => Some(
            sender
                .send("approve the quoted total", request, progress)
                .await?
                .transaction_hash,
        ),
        None => None,
    };
    let receipt = sender
        .send("create the agreement and pay", purchase.create, progress)
        .await?;
    Ok(Bought {
        quote: purchase.quote,
        approval,
        transaction: receipt.transaction_hash,
    })
}

/// Buys `service` of every asset of `dids` (several providers' assets for one federated job,
/// say) in as few transactions as the contracts allow: every purchase is prepared and checked on
/// its keeper's offer before anything is sent; then one approval of the sum per payment token
/// whose allowance is short, and one `createAgreementAndPay` per asset, each refusing to pay more
/// than its quote. `k` assets paid in one token take `k + 1` transactions (`k` when the
/// allowance covers the sum or they are paid in ether). Returns the purchases in the order of
/// `dids`.
///
/// # Errors
///
/// [`MarketError`]: before anything is sent when an offer or a document is refused; otherwise
/// the failed transaction. The purchases sent before it stand: their agreements are on chain,
/// made by the buyer's account, and are refundable after their time out if never served.
pub async fn buy_many(
    suite: &Suite,
    sender: &Sender,
    dids: &[B256],
    service: ServiceKind,
    service_timeout: u32,
    progress: &dyn Progress,
) -> Result<Vec<Bought>, MarketError> {
    let mut purchases = Vec::with_capacity(dids.len());
    for did in dids {
        let (document, keeper, checksum) = fetch_document(suite, *did).await?;
        purchases.push(
            prepare_purchase(
                suite,
                &keeper,
                &document,
                checksum,
                *did,
                sender.address(),
                service,
                service_timeout,
            )
            .await?,
        );
    }
    // One approval per token, of the sum of its quotes.
    let mut sums: Vec<(Address, U256)> = Vec::new();
    for purchase in &purchases {
        if purchase.quote.token.is_zero() {
            continue;
        }
        match sums
            .iter_mut()
            .find(|(token, _)| *token == purchase.quote.token)
        {
            Some((_, sum)) => {
                *sum = sum
                    .checked_add(purchase.quote.total)
                    .ok_or_else(|| MarketError::BadOffer("the quotes' sum overflows".into()))?;
            }
            None => sums.push((purchase.quote.token, purchase.quote.total)),
        }
    }
    let mut approvals = Vec::new();
    for (token, sum) in sums {
        let allowance = MockERC20::new(token, suite.provider())
            .allowance(sender.address(), suite.addresses.payment)
            .call()
            .await?;
        if allowance >= sum {
            continue;
        }
        let request = TransactionRequest::default()
            .with_from(sender.address())
            .with_to(token)
            .with_input(
                MockERC20::approveCall {
                    spender: suite.addresses.payment,
                    value: sum,
                }
                .abi_encode(),
            );
        let receipt = sender
            .send("approve the quotes' sum", request, progress)
            .await?;
        approvals.push((token, receipt.transaction_hash));
    }
    let mut bought = Vec::with_capacity(purchases.len());
    for purchase in purchases {
        let receipt = sender
            .send("create the agreement and pay", purchase.create, progress)
            .await?;
        bought.push(Bought {
            approval: approvals
                .iter()
                .find(|(token, _)| *token == purchase.quote.token)
                .map(|(_, hash)| *hash),
            quote: purchase.quote,
            transaction: receipt.transaction_hash,
        });
    }
    Ok(bought)
}

/// A file downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Downloaded {
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Bytes that were already there from an interrupted download.
    pub resumed_from: u64,
    /// Its SHA-256, as the document states it.
    pub sha256: String,
}

/// The body of `POST /v1/access`: an access request for agreement `id` (of asset `did`, whose
/// service condition is the contract `service`, on chain `chain_id`) with a fresh random nonce,
/// valid until `deadline` (unix time), signed by `consumer` as EIP-712 typed data.
///
/// # Errors
///
/// [`MarketError::BadAnswer`] if signing fails.
pub fn access_request(
    consumer: &alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    service: Address,
    did: B256,
    id: B256,
    deadline: u64,
) -> Result<serde_json::Value, MarketError> {
    service_request(
        consumer,
        chain_id,
        service,
        did,
        id,
        commands::ACCESS,
        deadline,
    )
}

/// The body of a request with `command` (`access`, `status`, `logs`, `stop`, ...) about agreement
/// `id` of asset `did`, served by `service` on chain `chain_id`, valid until `deadline`, signed by
/// `consumer` as EIP-712 typed data.
///
/// # Errors
///
/// [`MarketError::BadAnswer`] if signing fails.
pub fn service_request(
    consumer: &alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    service: Address,
    did: B256,
    id: B256,
    command: &str,
    deadline: u64,
) -> Result<serde_json::Value, MarketError> {
    let request = ServiceRequest {
        command: command.to_owned(),
        agreementId: id,
        did,
        consumer: consumer.address(),
        nonce: U256::from_be_bytes(rand::random::<[u8; 32]>()),
        deadline,
    };
    let domain = requests::domain(chain_id, service);
    let signature = consumer
        .sign_hash_sync(&requests::signing_hash(&request, &domain))
        .map_err(|error| MarketError::BadAnswer(error.to_string()))?;
    Ok(serde_json::json!({
        "chainId": chain_id,
        "request": {
            "command": request.command,
            "agreementId": request.agreementId.to_string(),
            "did": request.did.to_string(),
            "consumer": request.consumer.to_string(),
            "nonce": request.nonce.to_string(),
            "deadline": request.deadline,
        },
        "signature": format!("0x{}", hex::encode(signature.as_bytes())),
    }))
}

/// Downloads file `file` of the asset of agreement `id` to `out`, as the agreement's consumer
/// (`sender`): signs a request, streams the answer into `<out>.part` (resuming it with an HTTP
/// Range when it exists), checks the SHA-256 against the document, then renames it to `out`.
/// `on_bytes` is told the total size first, then each chunk's length.
///
/// # Errors
///
/// [`MarketError`]; a refused request sends nothing on chain and spends nothing.
pub async fn download(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    file: usize,
    out: &Path,
    on_bytes: &mut (dyn FnMut(DownloadEvent) + Send),
) -> Result<Downloaded, MarketError> {
    let agreement = agreement::show(suite, id, None).await?;
    let (document, keeper, _) = fetch_document(suite, agreement.did).await?;
    let from = Source {
        document: &document,
        keeper: &keeper,
        route: "/v1/access",
        command: commands::ACCESS,
    };
    fetch_file(suite, sender, &agreement, from, file, out, on_bytes).await
}

/// Where [`fetch_file`] gets a file: the document that lists it, its keeper, the route and the
/// command of the signed request.
pub(crate) struct Source<'a> {
    pub(crate) document: &'a MetadataDocument,
    pub(crate) keeper: &'a KeeperClient,
    pub(crate) route: &'a str,
    pub(crate) command: &'a str,
}

/// Streams file `file` of `from.document` about `agreement` into `out` (see [`download`]).
pub(crate) async fn fetch_file(
    suite: &Suite,
    sender: &Sender,
    agreement: &agreement::AgreementInfo,
    from: Source<'_>,
    file: usize,
    out: &Path,
    on_bytes: &mut (dyn FnMut(DownloadEvent) + Send),
) -> Result<Downloaded, MarketError> {
    let (document, keeper, id) = (from.document, from.keeper, agreement.id);
    let entry = document.files.get(file).ok_or_else(|| {
        MarketError::BadAnswer(format!(
            "the asset has {} file(s), not a file {file}",
            document.files.len()
        ))
    })?;
    let (service, now) = service_and_now(suite, agreement).await?;
    let part = out.with_extension(match out.extension() {
        Some(extension) => format!("{}.part", extension.to_string_lossy()),
        None => "part".to_owned(),
    });
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MarketError::Io { path, source }
    };
    let resumed_from = std::fs::metadata(&part).map(|info| info.len()).unwrap_or(0);
    let resumed_from = if resumed_from >= entry.content_size {
        0
    } else {
        resumed_from
    };
    let mut response = post_access(
        keeper,
        sender,
        suite.connection.chain_id,
        (service, agreement.did, id),
        now,
        (&format!("{}?file={file}", from.route), from.command),
        resumed_from,
        &mut |code| on_bytes(DownloadEvent::Waiting(code)),
    )
    .await?;
    let appending = resumed_from > 0 && response.status().as_u16() == 206;
    let mut handle = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(appending)
        .truncate(!appending)
        .open(&part)
        .map_err(io(&part))?;
    on_bytes(DownloadEvent::Started {
        total: entry.content_size,
        already: if appending { resumed_from } else { 0 },
    });
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| keeper.unreachable(&error))?
    {
        handle.write_all(&chunk).map_err(io(&part))?;
        on_bytes(DownloadEvent::Chunk(chunk.len() as u64));
    }
    handle.sync_all().map_err(io(&part))?;
    drop(handle);
    let sha256 = sha256_of(&part).map_err(io(&part))?;
    if sha256 != entry.sha256 {
        return Err(MarketError::ContentMismatch {
            got: sha256,
            expected: entry.sha256.clone(),
            path: part,
        });
    }
    std::fs::rename(&part, out).map_err(io(out))?;
    Ok(Downloaded {
        path: out.to_path_buf(),
        bytes: entry.content_size,
        resumed_from: if appending { resumed_from } else { 0 },
        sha256,
    })
}

/// The service condition of `agreement` (the domain of its requests) and the chain's time, never
/// behind this machine's (a deadline made from it is valid at both).
///
/// # Errors
///
/// [`MarketError`].
pub async fn service_and_now(
    suite: &Suite,
    agreement: &agreement::AgreementInfo,
) -> Result<(Address, u64), MarketError> {
    let service = agreement
        .service_condition()
        .map(|condition| condition.contract)
        .ok_or_else(|| MarketError::BadAnswer("the agreement has no service".to_owned()))?;
    let now = suite
        .provider()
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .map(|block| block.header.timestamp)
        .unwrap_or_default()
        .max(unix_now());
    Ok((service, now))
}

/// Sends a fresh signed access request for agreement `id` (service contract, asset and agreement
/// in `target`) to `route` of `keeper`, resuming from byte `resume_from` when not zero; again,
/// with a new request (each nonce is used once), while the keeper asks to come back because the
/// purchase is not confirmed yet or the settlement is under way (`on_wait` is told).
#[allow(clippy::too_many_arguments)]
async fn post_access(
    keeper: &KeeperClient,
    sender: &Sender,
    chain_id: u64,
    target: (Address, B256, B256),
    chain_now: u64,
    (route, command): (&str, &str),
    resume_from: u64,
    on_wait: &mut (dyn FnMut(String) + Send),
) -> Result<reqwest::Response, MarketError> {
    let (service, did, id) = target;
    let retry_until = std::time::Instant::now() + RETRY_FOR;
    loop {
        let body = service_request(
            sender.signer(),
            chain_id,
            service,
            did,
            id,
            command,
            chain_now.max(unix_now()) + REQUEST_VALIDITY,
        )?;
        let mut http = keeper
            .http
            .post(format!("{}{route}", keeper.base))
            .json(&body);
        if resume_from > 0 {
            http = http.header("range", format!("bytes={resume_from}-"));
        }
        let sent = http
            .send()
            .await
            .map_err(|error| keeper.unreachable(&error))?;
        match keeper.check(sent).await {
            Ok(response) => return Ok(response),
            Err(MarketError::Refused { code, .. })
                if (code == "unconfirmed" || code == "settlement_pending")
                    && std::time::Instant::now() < retry_until =>
            {
                on_wait(code);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A short-lived access token for an agreement, from its keeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    /// The token: `Authorization: Bearer <token>` on `GET /v1/access/{agreement}`.
    pub token: String,
    /// Unix time it expires.
    pub expires_at: u64,
    /// The agreement.
    pub agreement_id: String,
    /// The file's URL with the token in it, for players that cannot set headers.
    pub url: String,
}

/// Trades one signed access request for a short-lived token of agreement `id`, for file `file`
/// (the URL it returns names that file; the token is good for every file of the agreement).
/// A paid agreement is settled first, as for a download.
///
/// # Errors
///
/// [`MarketError`]: the keeper's refusal with its code, or an unreachable keeper.
pub async fn access_token(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    file: usize,
) -> Result<AccessToken, MarketError> {
    let agreement = agreement::show(suite, id, None).await?;
    let (_, keeper, _) = fetch_document(suite, agreement.did).await?;
    let (service, now) = service_and_now(suite, &agreement).await?;
    let response = post_access(
        &keeper,
        sender,
        suite.connection.chain_id,
        (service, agreement.did, id),
        now,
        (&format!("/v1/access/token?file={file}"), commands::ACCESS),
        0,
        &mut |_| {},
    )
    .await?;
    response
        .json()
        .await
        .map_err(|error| MarketError::BadAnswer(format!("the keeper's token: {error}")))
}

/// Progress of a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadEvent {
    /// The keeper asked to come back (`unconfirmed`, `settlement_pending`): retrying.
    Waiting(String),
    /// The transfer starts: `total` bytes, `already` of them on disk.
    Started {
        /// Size of the file.
        total: u64,
        /// Bytes resumed.
        already: u64,
    },
    /// A chunk arrived.
    Chunk(u64),
}

/// The SHA-256 of a file, hex, read in chunks.
///
/// # Errors
///
/// An I/O error.
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}
