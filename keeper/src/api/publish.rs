//! Metadata documents and offers.

use alloy::{
    primitives::{B256, Signature, hex},
    signers::SignerSync,
};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use insitu_bindings::{
    AssetRegistry,
    offers::{self, Offer},
};
use insitu_client::metadata::{self, MetadataError, ServiceKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    ApiError, ChainQuery, Chains, FieldErrorBody, OFFER_VALIDITY, access::check_file, now,
    stored_document,
};

/// Header carrying the publisher's signature (EIP-191 `personal_sign` of the document's 32-byte
/// keccak256) of a stored document.
pub const PUBLISHER_SIGNATURE: &str = "x-insitu-publisher-signature";

/// A stored document.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// keccak256 of the document: register it on chain.
    pub checksum: String,
    /// Where the keeper serves it: register it on chain.
    pub url: String,
}

/// Stores a metadata document for an allowed publisher, after checking it: the schema, every
/// location sealed to this keeper and inside its data folder, and every file present with the
/// size and SHA-256 the document states. Nothing is stored unless all of it holds.
#[utoipa::path(
    put,
    path = "/v1/metadata",
    request_body(content = String, content_type = "application/json", description = "the document's exact bytes"),
    params(
        ("x-insitu-publisher-signature" = String, Header, description = "personal_sign of the document's keccak256 by an allowed publisher"),
        ("chain" = Option<u64>, Query, description = "the chain whose key the locations are sealed to (default: the keeper's first chain)")
    ),
    responses(
        (status = 201, body = Stored),
        (status = 401, body = super::ErrorBody, description = "missing or malformed signature"),
        (status = 403, body = super::ErrorBody, description = "not a publisher of this keeper"),
        (status = 422, body = super::ErrorBody, description = "invalid document, location or file")
    )
)]
pub(super) async fn put_metadata(
    State(chains): State<Chains>,
    Query(chain): Query<ChainQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let checksum = metadata::checksum(&body);
    let signature = headers
        .get(PUBLISHER_SIGNATURE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| hex::decode(text.trim()).ok())
        .and_then(|bytes| Signature::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_signature",
                format!("sign the document's keccak256 and send it in {PUBLISHER_SIGNATURE}"),
            )
        })?;
    let publisher = signature
        .recover_address_from_msg(checksum.as_slice())
        .map_err(|_| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "forged",
                "the signature does not recover",
            )
        })?;
    let state = chains.get(chain.chain)?;
    if !state.shared.publishers.contains(&publisher) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_publisher",
            format!("{publisher} is not a publisher of this keeper"),
        ));
    }
    let document = match metadata::parse(&body) {
        Ok(document) => document,
        Err(MetadataError::NotJson(reason)) => return Err(ApiError::malformed(reason)),
        Err(MetadataError::Invalid(errors)) => {
            return Err(ApiError::invalid_metadata(
                "the document does not meet the metadata schema",
                errors
                    .into_iter()
                    .map(|error| FieldErrorBody {
                        path: error.path,
                        message: error.message,
                    })
                    .collect(),
            ));
        }
    };
    let mut problems = Vec::new();
    for (index, file) in document.files.iter().enumerate() {
        if let Err(error) = check_file(state, file).await {
            problems.push(FieldErrorBody {
                path: format!("/files/{index}/location"),
                message: error,
            });
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid_metadata(
            "the keeper cannot serve every file of the document",
            problems,
        ));
    }
    state
        .store
        .lock()
        .await
        .put_document(checksum, &body, publisher, now())
        .map_err(ApiError::internal)?;
    tracing::info!(%checksum, %publisher, "metadata document stored");
    Ok((
        StatusCode::CREATED,
        Json(Stored {
            checksum: checksum.to_string(),
            url: format!("{}/v1/metadata/{checksum}", state.shared.public_url),
        }),
    ))
}

/// A stored document, byte for byte (its keccak256 is the checksum in the path).
#[utoipa::path(
    get,
    path = "/v1/metadata/{checksum}",
    params(("checksum" = String, Path, description = "keccak256 of the document")),
    responses(
        (status = 200, content_type = "application/json", description = "the document"),
        (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)
    )
)]
pub(super) async fn get_metadata(
    State(chains): State<Chains>,
    Path(checksum): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let checksum: B256 = checksum
        .parse()
        .map_err(|_| ApiError::malformed("the checksum is 32 bytes of hex"))?;
    // A document is stored with the chain it was published for; any chain's will do.
    let mut missing = None;
    for state in chains.chains.iter() {
        match stored_document(state, checksum).await {
            Ok(bytes) => return Ok(([(header::CONTENT_TYPE, "application/json")], bytes)),
            Err(error) => missing = Some(error),
        }
    }
    Err(missing.unwrap_or_else(|| ApiError::internal("no chain")))
}

/// Which service an offer is for, on which chain.
#[derive(Debug, Deserialize)]
pub(super) struct OfferQuery {
    service: Option<String>,
    chain: Option<u64>,
}

/// An offer, with every number as a decimal string.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferBody {
    /// The asset.
    pub did: String,
    /// The metadata checksum it is for.
    pub checksum: String,
    /// The keeper's account.
    pub provider: String,
    /// Payment token.
    pub token: String,
    /// Who is paid.
    pub receivers: Vec<String>,
    /// How much each.
    pub amounts: Vec<String>,
    /// Shortest service time out, seconds.
    pub min_service_timeout: u32,
    /// Longest service time out, seconds.
    pub max_service_timeout: u32,
    /// Unix time the offer expires.
    pub expiry: u64,
    /// The asset's offer epoch it is valid for.
    pub epoch: u32,
}

/// A signed offer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedOffer {
    /// The offer.
    pub offer: OfferBody,
    /// The keeper's EIP-712 signature, hex.
    pub signature: String,
    /// The template to buy through.
    pub template: String,
    /// The chain.
    pub chain_id: u64,
}

/// A signed offer for `service` (`access` by default) of asset `did`, at the terms of its
/// metadata document, valid for an hour and the asset's current offer epoch.
#[utoipa::path(
    get,
    path = "/v1/offers/{did}",
    params(
        ("did" = String, Path, description = "the asset"),
        ("service" = Option<String>, Query, description = "access (default) or compute"),
        ("chain" = Option<u64>, Query, description = "the chain (default: the keeper's first chain)")
    ),
    responses(
        (status = 200, body = SignedOffer),
        (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody, description = "unknown asset, not served here, no such service")
    )
)]
pub(super) async fn offer(
    State(chains): State<Chains>,
    Path(did): Path<String>,
    Query(query): Query<OfferQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let state = chains.get(query.chain)?;
    let did: B256 = did
        .parse()
        .map_err(|_| ApiError::malformed("the asset id is 32 bytes of hex"))?;
    let kind = match query.service.as_deref().unwrap_or("access") {
        "access" => ServiceKind::Access,
        "compute" => ServiceKind::Compute,
        other => return Err(ApiError::malformed(format!("unknown service {other:?}"))),
    };
    let registry = AssetRegistry::new(state.suite.asset_registry, &state.provider);
    let keeper = state.key.address();
    let context = registry
        .offerContext(did, keeper)
        .call()
        .await
        .map_err(ApiError::internal)?;
    if !context.registered {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_asset",
            format!("no asset {did} is registered"),
        ));
    }
    if !context.accountCanServe {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_served_here",
            format!("this keeper ({keeper}) does not serve asset {did}"),
        ));
    }
    let asset = registry
        .getAsset(did)
        .call()
        .await
        .map_err(ApiError::internal)?;
    let bytes = stored_document(state, asset.checksum).await?;
    let document = metadata::parse(&bytes).map_err(ApiError::internal)?;
    let service = document.service(kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_service",
            format!("asset {did} is not sold with {kind:?}"),
        )
    })?;
    let (receivers, amounts) = service.receivers_and_amounts();
    let offer = Offer {
        did,
        checksum: asset.checksum,
        provider: keeper,
        token: service.token,
        receivers,
        amounts,
        minServiceTimeout: service.timeout.min,
        maxServiceTimeout: service.timeout.max,
        expiry: now() + OFFER_VALIDITY,
        epoch: context.offerEpoch,
    };
    let (domain_name, template) = match kind {
        ServiceKind::Access => (offers::ACCESS_TEMPLATE_DOMAIN, state.suite.access_template),
        ServiceKind::Compute => (
            offers::COMPUTE_TEMPLATE_DOMAIN,
            state.suite.compute_template,
        ),
    };
    let domain = offers::domain(domain_name, state.chain_id, template);
    let signature = state
        .key
        .sign_hash_sync(&offers::signing_hash(&offer, &domain))
        .map_err(ApiError::internal)?;
    Ok(Json(SignedOffer {
        offer: OfferBody {
            did: offer.did.to_string(),
            checksum: offer.checksum.to_string(),
            provider: offer.provider.to_string(),
            token: offer.token.to_string(),
            receivers: offer.receivers.iter().map(ToString::to_string).collect(),
            amounts: offer.amounts.iter().map(ToString::to_string).collect(),
            min_service_timeout: offer.minServiceTimeout,
            max_service_timeout: offer.maxServiceTimeout,
            expiry: offer.expiry,
            epoch: offer.epoch,
        },
        signature: format!("0x{}", hex::encode(signature.as_bytes())),
        template: template.to_string(),
        chain_id: state.chain_id,
    }))
}
