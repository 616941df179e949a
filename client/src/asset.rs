//! An asset as the registry records it.

use alloy::primitives::{Address, B256};
use insitu_bindings::AssetRegistry;
use serde::Serialize;

use crate::suite::Suite;

/// Why an asset could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// No asset has this id.
    #[error("no asset {0} is registered")]
    NotRegistered(B256),
    /// A read failed.
    #[error("reading the registry: {0}")]
    Call(#[from] alloy::contract::Error),
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
