//! An asset as the registry records it.

use alloy::{
    primitives::{Address, B256},
    providers::Provider,
    rpc::types::{BlockNumberOrTag, Filter},
    sol_types::SolEvent,
};
use insitu_bindings::AssetRegistry;
use serde::Serialize;

use crate::{governance::LOG_CHUNK, suite::Suite};

/// Why an asset could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// No asset has this id.
    #[error("no asset {0} is registered")]
    NotRegistered(B256),
    /// A read failed.
    #[error("reading the registry: {0}")]
    Call(#[from] alloy::contract::Error),
    /// Reading the registry's events failed.
    #[error("reading the registry's events: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
}

/// The registry's record of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetInfo {
    /// The asset's id.
    pub did: B256,
    /// Its owner.
    pub owner: Address,
    /// An owner named by a transfer not yet accepted.
    pub pending_owner: Option<Address>,
    /// Unix time of its registration.
    pub registered_at: u64,
    /// Checksum of its metadata.
    pub checksum: B256,
    /// Where its metadata is.
    pub url: String,
    /// The current epoch of its offers (offers signed for an earlier one are revoked).
    pub offer_epoch: u32,
    /// Accounts that serve it (providers' keepers).
    pub providers: Vec<Address>,
}

/// Reads asset `did`.
///
/// # Errors
///
/// [`AssetError::NotRegistered`] or [`AssetError::Call`].
pub async fn show(suite: &Suite, did: B256) -> Result<AssetInfo, AssetError> {
    let registry = AssetRegistry::new(suite.addresses.asset_registry, suite.provider());
    let asset = registry.getAsset(did).call().await?;
    if asset.owner.is_zero() {
        return Err(AssetError::NotRegistered(did));
    }
    let pending = registry.pendingOwnerOf(did).call().await?;
    let providers = registry.providersOf(did).call().await?;
    Ok(AssetInfo {
        did,
        owner: asset.owner,
        pending_owner: (!pending.is_zero()).then_some(pending),
        registered_at: asset.registeredAt.to::<u64>(),
        checksum: asset.checksum,
        url: asset.url,
        offer_epoch: asset.offerEpoch,
        providers,
    })
}

/// An asset's provenance as the registry's events record it (W3C PROV).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lineage {
    /// `wasGeneratedBy`: (activity, agent), in order.
    pub generated_by: Vec<(B256, Address)>,
    /// `wasDerivedFrom`: the sources, in order.
    pub derived_from: Vec<B256>,
}

/// Reads asset `did`'s provenance events, from the deployment's block to the latest, in chunks
/// of [`LOG_CHUNK`] blocks.
///
/// # Errors
///
/// [`AssetError::Rpc`].
pub async fn lineage(suite: &Suite, did: B256) -> Result<Lineage, AssetError> {
    let provider = suite.provider();
    let latest = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .map_or(0, |block| block.header.number);
    let mut lineage = Lineage::default();
    let mut from = suite.deployment.block;
    while from <= latest {
        let to = (from + LOG_CHUNK - 1).min(latest);
        let filter = Filter::new()
            .address(suite.addresses.asset_registry)
            .event_signature(vec![
                AssetRegistry::WasGeneratedBy::SIGNATURE_HASH,
                AssetRegistry::WasDerivedFrom::SIGNATURE_HASH,
            ])
            .topic1(did)
            .from_block(from)
            .to_block(to);
        for log in provider.get_logs(&filter).await? {
            if let Ok(event) = log.log_decode::<AssetRegistry::WasGeneratedBy>() {
                let event = event.inner.data;
                lineage.generated_by.push((event.activityId, event.agent));
            } else if let Ok(event) = log.log_decode::<AssetRegistry::WasDerivedFrom>() {
                lineage.derived_from.push(event.inner.data.sourceDid);
            }
        }
        from = to + 1;
    }
    Ok(lineage)
}
