//! What the keeper's integration tests share.

use alloy::providers::{DynProvider, Provider};

/// Sends `method` with `params` to the node (anvil's test methods: `anvil_mine`, `evm_mine`,
/// `anvil_reorg`, `evm_setAutomine`, ...); panics with the method's name if the node refuses.
pub(crate) async fn node_rpc(
    provider: &DynProvider,
    method: &'static str,
    params: serde_json::Value,
) {
    let _: serde_json::Value = provider
        .raw_request(method.into(), params)
        .await
        .unwrap_or_else(|error| panic!("{method}: {error}"));
}
