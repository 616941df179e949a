//! `insitu-keeper admin`: the operator's commands, over the keeper's store (and, for the balance,
//! its node). Requests are written for the running keeper to apply; the command waits a little
//! for the answer and says whether it came.

use std::time::{Duration, UNIX_EPOCH};

use alloy::providers::Provider;
use anyhow::Context;
use clap::{Args, Subcommand};
use insitu_client::keys;
use insitu_keeper::{
    admin::{self, AgreementLine, AgreementReport, Balance},
    config::{ChainSettings, Config},
    executor::now,
    rpc_pool::RpcPool,
    store::{AuditEntry, OperatorRequest, RequestKind, Store},
};

/// The operator's commands, about one chain of the keeper.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The chain (default: the keeper's first chain).
    #[arg(long, global = true)]
    chain: Option<u64>,
    #[command(subcommand)]
    command: AdminCommand,
}

/// An operator's command.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// List the agreements, newest first, with their settlement.
    Agreements {
        /// Only agreements in this state (created, paid, served, released, refunded, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only those whose settlement is in this state (pending, sent, confirmed, failed,
        /// abandoned, ...; `none` for none).
        #[arg(long)]
        settlement: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        output: Output,
    },
    /// Everything about one agreement: its events, its settlement, every transaction signed for
    /// it, the operator's requests and its audit log.
    Show {
        /// The agreement id (0x + 64 hex digits).
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Decide a failed or abandoned settlement again.
    Retry(SettlementRequest),
    /// Give a settlement up: the keeper will not settle or serve the agreement (its consumer is
    /// refunded once the service times out).
    Abandon(SettlementRequest),
    /// Scan the chain again from a block, recording whatever events are missing from there on.
    Reindex {
        /// The first block to scan again.
        #[arg(long)]
        from: u64,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
        /// Seconds to wait for the running keeper to apply it.
        #[arg(long, default_value_t = 15)]
        wait: u64,
        #[command(flatten)]
        output: Output,
    },
    /// The newest lines of the whole audit log.
    Log {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        output: Output,
    },
    /// The keeper account's balance, against `low_balance_gwei`.
    Balance {
        #[command(flatten)]
        output: Output,
    },
}

/// A retry or an abandon.
#[derive(Debug, Args)]
pub(crate) struct SettlementRequest {
    /// The agreement id (0x + 64 hex digits).
    id: String,
    /// Why (kept in the audit log).
    #[arg(long)]
    reason: String,
    /// Seconds to wait for the running keeper to apply it.
    #[arg(long, default_value_t = 15)]
    wait: u64,
    #[command(flatten)]
    output: Output,
}

/// How to print.
#[derive(Debug, Args)]
pub(crate) struct Output {
    /// Print JSON (one document) instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `args` with the keeper's `config`.
pub(crate) fn run(config: &Config, args: AdminArgs) -> anyhow::Result<()> {
    let chains = config.chain_settings();
    let chain = match args.chain {
        None => chains[0].clone(),
        Some(id) => chains
            .iter()
            .find(|chain| chain.chain_id == id)
            .cloned()
            .with_context(|| {
                format!(
                    "this keeper serves chain(s) {}, not {id}",
                    chains
                        .iter()
                        .map(|chain| chain.chain_id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
    };
    let chain = &chain;
    let open = || open_store(chain);
    match args.command {
        AdminCommand::Agreements {
            state,
            settlement,
            limit,
            output,
        } => {
            let state = state
                .as_deref()
                .map(admin::parse_agreement_state)
                .transpose()?;
            let settlement = settlement
                .as_deref()
                .map(admin::parse_settlement_state)
                .transpose()?;
            let lines = admin::agreements(&open()?, state, settlement, limit)?;
            print(output.json, &lines, || agreements_text(&lines))
        }
        AdminCommand::Show { id, output } => {
            let id = admin::parse_id(&id)?;
            let report = admin::show(&open()?, id)?;
            print(output.json, &report, || report_text(&report))
        }
        AdminCommand::Retry(request) => settle(chain, RequestKind::Retry, request),
        AdminCommand::Abandon(request) => settle(chain, RequestKind::Abandon, request),
        AdminCommand::Reindex {
            from,
            reason,
            wait,
            output,
        } => {
            let (deployment, _) = chain
                .deployment()
                .context("reading the deployment's addresses")?;
            let seq = admin::request_reindex(&mut open()?, from, deployment.block, &reason, now())?;
            finish(chain, seq, wait, output.json)
        }
        AdminCommand::Log { limit, output } => {
            let lines = open()?.audit(None, limit)?;
            print(output.json, &lines, || audit_text(&lines))
        }
        AdminCommand::Balance { output } => {
            let key = keys::load(&chain.key).context("loading the keeper's key")?;
            let runtime = tokio::runtime::Runtime::new()?;
            let wei = runtime.block_on(async {
                let pool = RpcPool::connect(
                    &chain.endpoints()?,
                    chain.chain_id,
                    chain.rpc_max_lag_blocks,
                )
                .await?;
                anyhow::Ok(pool.provider().get_balance(key.address()).await?)
            })?;
            let balance = Balance::new(key.address(), wei, config.low_balance_gwei);
            print(output.json, &balance, || {
                format!(
                    "{}: {} gwei{}\n",
                    balance.account,
                    balance.gwei,
                    if balance.low {
                        format!(" (LOW: below {} gwei)", balance.low_balance_gwei)
                    } else {
                        String::new()
                    }
                )
            })
        }
    }
}

fn settle(
    chain: &ChainSettings,
    kind: RequestKind,
    request: SettlementRequest,
) -> anyhow::Result<()> {
    let id = admin::parse_id(&request.id)?;
    let mut store = open_store(chain)?;
    let seq = admin::request_settlement(&mut store, kind, id, &request.reason, now())?;
    finish(chain, seq, request.wait, request.output.json)
}

/// The keeper's store; never a new one (a wrong `database` setting would otherwise create an
/// empty store and find nothing in it).
fn open_store(chain: &ChainSettings) -> anyhow::Result<Store> {
    anyhow::ensure!(
        chain.database.is_file(),
        "there is no keeper store at {} (the configuration's `database` for chain {})",
        chain.database.display(),
        chain.chain_id
    );
    Store::open(&chain.database)
        .with_context(|| format!("opening the store {}", chain.database.display()))
}

/// Waits for request `seq` and prints how it stands.
fn finish(chain: &ChainSettings, seq: u64, wait: u64, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let request = runtime
        .block_on(admin::wait_applied(
            &chain.database,
            seq,
            Duration::from_secs(wait),
        ))?
        .context("the request vanished from the store")?;
    print(json, &request, || request_text(&request))
}

fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn time(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

fn agreements_text(lines: &[AgreementLine]) -> String {
    if lines.is_empty() {
        return "no agreements\n".to_owned();
    }
    let mut text = format!(
        "{:<66}  {:<15}  {:>8}  {:<10}  {}\n",
        "agreement", "state", "block", "settlement", "outcome"
    );
    for line in lines {
        text += &format!(
            "{:<66}  {:<15}  {:>8}  {:<10}  {}\n",
            line.id,
            line.state.as_str(),
            line.created_block,
            line.settlement.map_or("-", |state| state.as_str()),
            line.outcome.as_deref().unwrap_or("")
        );
    }
    text
}

fn report_text(report: &AgreementReport) -> String {
    let agreement = &report.agreement;
    let mut text = format!(
        "agreement {}\n  asset     {}\n  consumer  {}\n  state     {} (since block {}, created in block {})\n",
        agreement.id,
        agreement.did,
        agreement.consumer,
        agreement.state.as_str(),
        agreement.state_block,
        agreement.created_block
    );
    text += "events\n";
    for event in &report.events {
        text += &format!(
            "  block {:>8}  {:<16} tx {}\n",
            event.at.block_number,
            format!("{:?}", event.kind),
            event.at.tx_hash
        );
    }
    match &report.settlement {
        None => text += "settlement: none\n",
        Some(action) => {
            text += &format!(
                "settlement: {}{}\n",
                action.state.as_str(),
                action
                    .outcome
                    .as_deref()
                    .map(|outcome| format!(" ({outcome})"))
                    .unwrap_or_default()
            );
        }
    }
    if !report.attempts.is_empty() {
        text += "transactions (newest first)\n";
        for attempt in &report.attempts {
            text += &format!(
                "  {}  nonce {}  max fee {} wei  tip {} wei  signed {}\n",
                attempt.tx_hash,
                attempt.nonce,
                attempt.max_fee_per_gas,
                attempt.max_priority_fee_per_gas,
                time(attempt.sent_at)
            );
        }
    }
    text += "audit log\n";
    text += &audit_text(&report.audit);
    text
}

fn audit_text(lines: &[AuditEntry]) -> String {
    let mut text = String::new();
    for line in lines {
        text += &format!(
            "  {}  {:<8}  {}{}{}\n",
            time(line.at),
            line.actor,
            line.agreement_id
                .map(|id| format!("{id}  "))
                .unwrap_or_default(),
            line.event,
            line.detail
                .as_deref()
                .map(|detail| format!(": {detail}"))
                .unwrap_or_default()
        );
    }
    text
}

fn request_text(request: &OperatorRequest) -> String {
    match &request.result {
        Some(result) => format!("request {}: {result}\n", request.seq),
        None => format!(
            "request {} is recorded; the keeper applies it in its next round (it has not yet: \
             is it running?)\n",
            request.seq
        ),
    }
}
