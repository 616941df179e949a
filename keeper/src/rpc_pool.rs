//! Several JSON-RPC endpoints of one chain behind one provider: requests go to a healthy endpoint,
//! and move to the next one when it fails.
//!
//! - **Health.** Every endpoint's head is read every [`HEALTH_INTERVAL`] (concurrently, each
//!   within [`HEALTH_TIMEOUT`]). An endpoint is healthy when it answered and its head is at most
//!   `max_lag` blocks behind the highest head any endpoint reported: a node that stopped
//!   following the chain, or follows it late, is avoided even though it answers.
//! - **Routing.** Requests go to the active endpoint: the first healthy one in the configured
//!   order, kept while it stays healthy (no flapping between equals). A request that names a block
//!   (`eth_getLogs` up to a block, `eth_getBlockByNumber`) skips endpoints whose head is below it,
//!   so a lagging node never answers "no logs" for blocks it does not have yet.
//! - **Failover.** When the transport to an endpoint fails (refused, reset, timed out), the same
//!   request goes to the next endpoint at once, and the failed one is marked unhealthy until a
//!   health check finds it well again. A JSON-RPC error (a revert, an unknown transaction) is an
//!   answer, not a failure. Sending a signed transaction again through another endpoint is safe:
//!   it is the same transaction, with the same hash.
//!
//! Each endpoint has the gauges `keeper_rpc_up`, `keeper_rpc_head` and `keeper_rpc_active`,
//! labelled with its redacted URL, and every change of the active endpoint is logged.

use std::{
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::{
        client::RpcClient,
        json_rpc::{RequestPacket, ResponsePacket, SerializedRequest},
    },
    transports::{BoxTransport, TransportError, TransportErrorKind, TransportFut},
};
use futures::future::join_all;
use insitu_client::rpc::{self, Endpoint, RpcError, Scheme};
use tokio::sync::watch;
use tower::Service;

/// How often every endpoint's head is read.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// How long a health check waits for an endpoint.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// One endpoint and what the pool knows of it.
struct Member {
    endpoint: Endpoint,
    transport: BoxTransport,
    label: String,
    health: Mutex<Health>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Health {
    /// Its head at the last check, if it answered.
    head: Option<u64>,
    /// Whether it may be used first.
    healthy: bool,
    /// Whether it was found to serve the pool's chain.
    verified: bool,
}

impl Member {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where one endpoint stands, for logs, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The endpoint, redacted.
    pub endpoint: String,
    /// Its head at the last check.
    pub head: Option<u64>,
    /// Whether it is healthy.
    pub healthy: bool,
    /// Whether requests go to it first.
    pub active: bool,
}

struct Shared {
    members: Vec<Member>,
    chain_id: u64,
    max_lag: u64,
    /// Index of the active member.
    active: Mutex<usize>,
}

/// The endpoints of one chain, behind one provider.
#[derive(Clone)]
pub struct RpcPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RpcPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcPool")
            .field("endpoints", &self.status())
            .finish()
    }
}

impl RpcPool {
    /// Connects to each of `endpoints` (concurrently) and checks that each serves `chain_id`.
    /// An http(s) endpoint that cannot be reached now stays in the pool, unhealthy, and is used
    /// once a health check reaches it (and finds the right chain); a ws(s) endpoint that cannot
    /// be reached is left out with a warning. One that serves another chain is an error, as is
    /// none reachable at all.
    ///
    /// # Errors
    ///
    /// [`RpcError`]: the first endpoint's error when none can be reached, or a wrong chain.
    pub async fn connect(
        endpoints: &[Endpoint],
        chain_id: u64,
        max_lag: u64,
    ) -> Result<Self, RpcError> {
        let connected = join_all(endpoints.iter().map(|endpoint| async move {
            let reached = rpc::connect(endpoint, Some(chain_id)).await;
            let transport = match &reached {
                Ok(connection) => Some(connection.provider.client().transport().clone()),
                // No connection to keep open: the transport is made without the network.
                Err(RpcError::Unreachable { .. } | RpcError::Timeout { .. })
                    if matches!(endpoint.scheme(), Scheme::Http | Scheme::Https) =>
                {
                    ProviderBuilder::new()
                        .disable_recommended_fillers()
                        .connect(endpoint.as_str())
                        .await
                        .ok()
                        .map(|provider| provider.client().transport().clone())
                }
                Err(_) => None,
            };
            (reached.map(|_| ()), transport)
        }))
        .await;
        let mut members = Vec::new();
        let mut first_error = None;
        let mut reachable = false;
        for (endpoint, (reached, transport)) in endpoints.iter().zip(connected) {
            let verified = match reached {
                Ok(()) => true,
                Err(error @ RpcError::WrongChain { .. }) => return Err(error),
                Err(error) => {
                    if transport.is_some() {
                        tracing::warn!(%error, "an RPC endpoint cannot be reached now; it is checked again every few seconds");
                    } else {
                        tracing::warn!(%error, "an RPC endpoint is left out: it could not be reached");
                    }
                    first_error.get_or_insert(error);
                    false
                }
            };
            reachable |= verified;
            if let Some(transport) = transport {
                members.push(Member {
                    label: endpoint.redacted(),
                    endpoint: endpoint.clone(),
                    transport,
                    health: Mutex::new(Health {
                        healthy: verified,
                        verified,
                        ..Health::default()
                    }),
                });
            }
        }
        if !reachable {
            return Err(first_error.unwrap_or(RpcError::InvalidUrl {
                reason: "no RPC endpoint configured".to_owned(),
            }));
        }
        let pool = Self {
            shared: Arc::new(Shared {
                members,
                chain_id,
                max_lag,
                active: Mutex::new(0),
            }),
        };
        pool.check().await;
        Ok(pool)
    }

    /// A provider whose requests go through the pool.
    pub fn provider(&self) -> DynProvider {
        let local = self.shared.members.iter().all(|member| {
            let host = url::Url::parse(member.endpoint.as_str())
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned));
            matches!(host.as_deref(), Some("127.0.0.1" | "localhost" | "[::1]"))
        });
        let client = RpcClient::new(
            PoolTransport {
                shared: self.shared.clone(),
            },
            local,
        );
        ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_client(client)
            .erased()
    }

    /// Every endpoint's status, in the configured order.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let active = *self
            .shared
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared
            .members
            .iter()
            .enumerate()
            .map(|(index, member)| {
                let health = *member.health();
                EndpointStatus {
                    endpoint: member.label.clone(),
                    head: health.head,
                    healthy: health.healthy,
                    active: index == active,
                }
            })
            .collect()
    }

    /// Reads every endpoint's head once (and, for one not yet verified, its chain id) and updates
    /// their health and the active endpoint.
    pub async fn check(&self) {
        let shared = &self.shared;
        let heads = join_all(shared.members.iter().map(|member| async move {
            if !member.health().verified {
                let chain = ask(&member.transport, "eth_chainId").await?;
                if chain != shared.chain_id {
                    tracing::error!(
                        endpoint = %member.label,
                        chain,
                        expected = shared.chain_id,
                        "an RPC endpoint serves another chain: it is never used"
                    );
                    return None;
                }
                member.health().verified = true;
                tracing::info!(endpoint = %member.label, "an RPC endpoint is reachable again");
            }
            ask(&member.transport, "eth_blockNumber").await
        }))
        .await;
        let best = heads.iter().flatten().copied().max();
        for (member, head) in shared.members.iter().zip(&heads) {
            let mut health = member.health();
            health.head = *head;
            health.healthy = match (head, best) {
                (Some(head), Some(best)) => {
                    health.verified && head.saturating_add(shared.max_lag) >= best
                }
                _ => false,
            };
            metrics::gauge!("keeper_rpc_up", "endpoint" => member.label.clone())
                .set(if health.healthy { 1.0 } else { 0.0 });
            if let Some(head) = head {
                metrics::gauge!("keeper_rpc_head", "endpoint" => member.label.clone())
                    .set(*head as f64);
            }
        }
        self.choose_active();
    }

    /// Keeps the active endpoint while it is healthy; else the first healthy one in the
    /// configured order (or the first of all when none is).
    fn choose_active(&self) {
        let shared = &self.shared;
        let mut active = shared.active.lock().unwrap_or_else(PoisonError::into_inner);
        let current = *active;
        if !shared.members[current].health().healthy {
            let next = shared
                .members
                .iter()
                .position(|member| member.health().healthy)
                .unwrap_or(current);
            if next != current {
                tracing::warn!(
                    from = %shared.members[current].label,
                    to = %shared.members[next].label,
                    "RPC failover: the active endpoint is down or behind"
                );
                *active = next;
            }
        }
        for (index, member) in shared.members.iter().enumerate() {
            metrics::gauge!("keeper_rpc_active", "endpoint" => member.label.clone())
                .set(if index == *active { 1.0 } else { 0.0 });
        }
    }

    /// Checks the endpoints every [`HEALTH_INTERVAL`] until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(HEALTH_INTERVAL) => {}
                changed = stop.changed() => {
                    // The sender is gone: nothing will ever ask this pool to stop, or use it.
                    if changed.is_err() {
                        return;
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
            self.check().await;
        }
    }
}

/// Sends `method` (no parameters) through `transport` and reads the answer as a hex quantity,
/// within [`HEALTH_TIMEOUT`]; `None` on any failure.
async fn ask(transport: &BoxTransport, method: &'static str) -> Option<u64> {
    let request = SerializedRequest::try_from(alloy::rpc::json_rpc::Request::new(
        method,
        alloy::rpc::json_rpc::Id::Number(0),
        serde_json::json!([]),
    ))
    .ok()?;
    let mut transport = transport.clone();
    let answer = tokio::time::timeout(
        HEALTH_TIMEOUT,
        transport.call(RequestPacket::Single(request)),
    )
    .await
    .ok()?
    .ok()?;
    let ResponsePacket::Single(response) = answer else {
        return None;
    };
    let text: String = serde_json::from_str(response.payload.as_success()?.get()).ok()?;
    u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

/// The transport of the pool's provider.
#[derive(Clone)]
struct PoolTransport {
    shared: Arc<Shared>,
}

impl Shared {
    /// The members to try for a request that needs a block (`needs`): the active one, then
    /// the other healthy ones in order, then the rest; a member whose head is known to be below
    /// `needs` goes last, and one not found to serve the chain is left out.
    fn order(&self, needs: Option<Needs>) -> Vec<usize> {
        let active = *self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let needs = match needs {
            Some(Needs::Block(block)) => Some(block),
            Some(Needs::BestHead) => self
                .members
                .iter()
                .filter_map(|member| member.health().head)
                .max(),
            None => None,
        };
        let rank = |index: usize| {
            let health = *self.members[index].health();
            let behind = matches!((needs, health.head), (Some(needs), Some(head)) if head < needs);
            (behind, !health.healthy, index != active, index)
        };
        // An endpoint not yet found to serve this chain is never asked anything else.
        let mut order: Vec<usize> = (0..self.members.len())
            .filter(|&index| self.members[index].health().verified)
            .collect();
        order.sort_by_key(|&index| rank(index));
        order
    }

    fn failed(&self, index: usize, error: &TransportError) {
        let member = &self.members[index];
        member.health().healthy = false;
        metrics::gauge!("keeper_rpc_up", "endpoint" => member.label.clone()).set(0.0);
        tracing::warn!(
            endpoint = %member.label,
            error = %member.endpoint.scrub(&error.to_string()),
            "an RPC endpoint failed; trying the next"
        );
    }
}

impl std::fmt::Debug for PoolTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolTransport").finish_non_exhaustive()
    }
}

/// What a request needs the endpoint to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// A block it names.
    Block(u64),
    /// The newest block any endpoint has: a receipt or an account's nonce read from an endpoint
    /// a few blocks behind would look like a transaction undone by a reorg.
    BestHead,
}

/// What a request needs the endpoint to have, if anything.
fn needed_block(request: &RequestPacket) -> Option<Needs> {
    let RequestPacket::Single(request) = request else {
        return None;
    };
    match request.method() {
        "eth_getTransactionReceipt" | "eth_getTransactionCount" => return Some(Needs::BestHead),
        "eth_getLogs" | "eth_getBlockByNumber" => {}
        _ => return None,
    }
    let params: serde_json::Value = serde_json::from_str(request.params()?.get()).ok()?;
    let block = match request.method() {
        "eth_getLogs" => params.get(0)?.get("toBlock")?.clone(),
        _ => params.get(0)?.clone(),
    };
    u64::from_str_radix(block.as_str()?.strip_prefix("0x")?, 16)
        .ok()
        .map(Needs::Block)
}

impl Service<RequestPacket> for PoolTransport {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let mut last = None;
            for index in shared.order(needed_block(&request)) {
                let mut transport = shared.members[index].transport.clone();
                match transport.call(request.clone()).await {
                    Ok(response) => return Ok(response),
                    Err(error) => {
                        shared.failed(index, &error);
                        last = Some(error);
                    }
                }
            }
            Err(last.unwrap_or_else(|| TransportErrorKind::custom_str("no RPC endpoint")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of endpoints with these (head, healthy, verified), no network involved.
    fn shared(members: &[(Option<u64>, bool, bool)]) -> Shared {
        Shared {
            members: members
                .iter()
                .enumerate()
                .map(|(index, &(head, healthy, verified))| {
                    let url = format!("http://127.0.0.1:{}", 9000 + index);
                    Member {
                        endpoint: Endpoint::parse(&url).unwrap(),
                        transport: ProviderBuilder::new()
                            .connect_http(url.parse().unwrap())
                            .client()
                            .transport()
                            .clone(),
                        label: url,
                        health: Mutex::new(Health {
                            head,
                            healthy,
                            verified,
                        }),
                    }
                })
                .collect(),
            chain_id: 31_337,
            max_lag: 3,
            active: Mutex::new(0),
        }
    }

    #[test]
    fn requests_go_to_the_active_then_healthy_then_the_rest_never_the_unverified() {
        let pool = shared(&[
            (Some(100), true, true),
            (Some(80), false, true),
            (Some(101), true, true),
            (None, false, false),
        ]);
        assert_eq!(pool.order(None), [0, 2, 1]);
        // A block the active endpoint does not have yet goes to one that has it: a node a block
        // behind would answer "no logs" for it.
        assert_eq!(pool.order(Some(Needs::Block(101))), [2, 0, 1]);
        // A receipt is asked of an endpoint at the best head.
        assert_eq!(pool.order(Some(Needs::BestHead)), [2, 0, 1]);
        // The active one failing moves it behind the healthy ones.
        pool.members[0].health().healthy = false;
        assert_eq!(pool.order(None), [2, 0, 1]);
    }

    fn packet(method: &'static str, params: serde_json::Value) -> RequestPacket {
        let request =
            alloy::rpc::json_rpc::Request::new(method, alloy::rpc::json_rpc::Id::Number(1), params);
        RequestPacket::Single(request.try_into().unwrap())
    }

    #[test]
    fn the_block_a_request_needs_is_read_from_its_params() {
        assert_eq!(
            needed_block(&packet(
                "eth_getLogs",
                serde_json::json!([{"fromBlock": "0x10", "toBlock": "0x1f"}])
            )),
            Some(Needs::Block(31))
        );
        assert_eq!(
            needed_block(&packet(
                "eth_getTransactionReceipt",
                serde_json::json!(["0x00"])
            )),
            Some(Needs::BestHead)
        );
        assert_eq!(
            needed_block(&packet(
                "eth_getBlockByNumber",
                serde_json::json!(["0x2a", false])
            )),
            Some(Needs::Block(42))
        );
        assert_eq!(
            needed_block(&packet(
                "eth_getBlockByNumber",
                serde_json::json!(["latest", false])
            )),
            None
        );
        assert_eq!(
            needed_block(&packet("eth_blockNumber", serde_json::json!([]))),
            None
        );
    }
}
