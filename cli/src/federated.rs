//! `insitu federated`: the consumer's commands for federated learning. `order` buys federated
//! compute on several providers' assets and orders on each a job that joins the consumer's own
//! aggregator; `register-model` checks every provider's signed round log once the jobs are done
//! and registers the trained model as the consumer's asset, derived from them.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::primitives::B256;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use insitu_client::{
    compute, federated,
    market::{self, KeeperClient},
    metadata::ServiceKind,
};
use serde::{Deserialize, Serialize};

use crate::{
    SignerArgs, SuiteArgs, open_suite,
    output::{Output, TerminalProgress},
    sender,
};

/// `insitu federated`.
#[derive(Debug, Subcommand)]
pub(crate) enum FederatedCommand {
    /// Buy federated compute on several providers' assets (one agreement and one escrow each, in
    /// as few transactions as the contracts allow) and order on each a job that runs your Flower
    /// app (FAB) and joins your SuperLink; prints each job's SuperNode key, to register with
    /// `flwr supernode register` before `flwr run`.
    Order(Box<OrderArgs>),
    /// Once the jobs are done: download and check each provider's signed round log, then publish
    /// the trained model at a keeper that serves it for you and register it as your asset,
    /// derived on chain from the round logs (each derived from its provider's asset), with the
    /// logs' hashes in its metadata document.
    RegisterModel(Box<RegisterModelArgs>),
}

/// `insitu federated order`.
#[derive(Debug, Args)]
pub(crate) struct OrderArgs {
    /// The assets to train on, one per provider (ids, 32 bytes hex).
    #[arg(required = true, num_args = 1..=federated::MAX_MEMBERS)]
    dids: Vec<B256>,
    /// The Flower app bundle (FAB, made with `flwr build`) every provider runs.
    #[arg(long)]
    app: PathBuf,
    /// Your SuperLink's Fleet API, HOST:PORT, as the providers' keepers reach it.
    #[arg(long)]
    superlink: String,
    /// The PEM certificate of the authority that signed your SuperLink's TLS certificate.
    #[arg(long)]
    superlink_ca: PathBuf,
    /// Rounds of training each provider serves.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
    /// The runtime the jobs run in (a Flower runtime every asset's compute policy lists).
    #[arg(long, default_value = "flower")]
    runtime: String,
    /// Seconds each provider has to deliver (within its offer's bounds; 0 takes the longest);
    /// past it, you can refund that agreement.
    #[arg(long, default_value_t = 0)]
    timeout: u32,
    /// Seconds to wait for each job's SuperNode key.
    #[arg(long, default_value_t = 120)]
    key_wait: u64,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

/// `insitu federated register-model`.
#[derive(Debug, Args)]
pub(crate) struct RegisterModelArgs {
    /// The agreements of the training, one per provider (ids, 32 bytes hex).
    #[arg(required = true, num_args = 1..=federated::MAX_MEMBERS)]
    agreements: Vec<B256>,
    /// The Flower app bundle (FAB) you ordered: every job must have run it.
    #[arg(long)]
    app: PathBuf,
    /// The trained model's file.
    #[arg(long)]
    model: PathBuf,
    /// Where the keeper reads the model (file://, https:// or s3:// URL; default: file:// with
    /// the model's absolute path, for a keeper on this machine).
    #[arg(long)]
    location: Option<String>,
    /// The keeper that serves the model for you (you must be one of its publishers).
    #[arg(long)]
    keeper: String,
    /// The model's title.
    #[arg(long)]
    name: String,
    /// What the model is.
    #[arg(long)]
    description: String,
    /// Its licence (an SPDX identifier or a URL).
    #[arg(long)]
    license: String,
    /// The model's MIME type.
    #[arg(long, default_value = "application/octet-stream")]
    content_type: String,
    /// Where to write the providers' round logs.
    #[arg(long, default_value = ".")]
    logs: PathBuf,
    /// Seconds to wait for each job to be done.
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// The seed of the model's asset id (32 bytes, hex; random when omitted).
    #[arg(long)]
    seed: Option<B256>,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

/// One job ordered.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderedJob {
    /// The asset.
    pub(crate) did: B256,
    /// The agreement bought on it.
    pub(crate) agreement: B256,
    /// Its SuperNode's key, to register with the SuperLink.
    pub(crate) supernode_key: String,
}

/// What `insitu federated order` did.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ordered {
    /// The purchase transactions, in order: the approvals (one per token, when needed), then the
    /// purchases.
    pub(crate) transactions: Vec<B256>,
    /// The jobs.
    pub(crate) jobs: Vec<OrderedJob>,
}

/// What `insitu federated register-model` did.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RegisteredModel {
    /// The model's asset.
    pub(crate) did: B256,
    /// Its document's checksum, on chain.
    pub(crate) checksum: B256,
    /// Where its document is served.
    pub(crate) url: String,
    /// The registration.
    pub(crate) transaction: B256,
    /// The training its document records.
    pub(crate) training: insitu_client::metadata::Training,
}

/// Runs `insitu federated`.
pub(crate) async fn run(command: FederatedCommand, output: &Output) -> Result<()> {
    match command {
        FederatedCommand::Order(args) => order(*args, output).await,
        FederatedCommand::RegisterModel(args) => register_model(*args, output).await,
    }
}

/// Refuses a list naming one id twice.
fn unique(ids: &[B256], what: &str) -> Result<()> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            bail!("{what} {id} is given twice");
        }
    }
    Ok(())
}

async fn order(args: OrderArgs, output: &Output) -> Result<()> {
    // Everything that can be checked here is, before anything is sent.
    unique(&args.dids, "asset")?;
    let app = std::fs::read(&args.app)
        .with_context(|| format!("reading the app {}", args.app.display()))?;
    if app.is_empty() {
        bail!("the app {} is empty", args.app.display());
    }
    let ca_pem = std::fs::read_to_string(&args.superlink_ca)
        .with_context(|| format!("reading {}", args.superlink_ca.display()))?;
    if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
        bail!("{} holds no PEM certificate", args.superlink_ca.display());
    }
    match args.superlink.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
        _ => bail!("--superlink {:?} is not HOST:PORT", args.superlink),
    }
    let aggregator = federated::Aggregator {
        address: args.superlink.clone(),
        ca_pem,
    };
    let order = federated::order(app, &args.runtime, &aggregator, args.rounds);
    let suite = open_suite(&args.suite).await?;
    let sender = sender(&suite.connection, &args.signer)?;
    // Every asset must run this app in this runtime: nothing is bought otherwise.
    for did in &args.dids {
        let (document, _, _) = market::fetch_document(&suite, *did).await?;
        federated::check_order(*did, &document, &order)?;
    }
    let bought = market::buy_many(
        &suite,
        &sender,
        &args.dids,
        ServiceKind::Compute,
        args.timeout,
        &TerminalProgress::new(output),
    )
    .await?;
    // The approvals (one per token), then the purchases.
    let mut transactions: Vec<B256> = Vec::new();
    for approval in bought.iter().filter_map(|one| one.approval) {
        if !transactions.contains(&approval) {
            transactions.push(approval);
        }
    }
    transactions.extend(bought.iter().map(|one| one.transaction));
    let agreements: Vec<B256> = bought.iter().map(|one| one.quote.agreement_id).collect();
    // Past this point the agreements are paid for: a failure names them, to follow them up or
    // refund them after their time out.
    let bought_note = || {
        format!(
            "bought agreements {} (each refundable after its time out if its job never \
             delivers)",
            agreements
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut jobs = Vec::new();
    for one in &bought {
        let id = one.quote.agreement_id;
        compute::submit(&suite, &sender, id, &order)
            .await
            .with_context(bought_note)?;
        output.note(&format!("ordered the job of agreement {id}"));
    }
    for one in &bought {
        let id = one.quote.agreement_id;
        let key = federated::supernode_key(&suite, &sender, id, Duration::from_secs(args.key_wait))
            .await
            .with_context(bought_note)?;
        jobs.push(OrderedJob {
            did: one.quote.did,
            agreement: id,
            supernode_key: key,
        });
    }
    output.federated_ordered(&Ordered { transactions, jobs })
}

/// `file://` and the absolute path of `path`.
fn file_url(path: &Path) -> Result<String> {
    let absolute = std::fs::canonicalize(path)
        .with_context(|| format!("reading the model {}", path.display()))?;
    Ok(url::Url::from_file_path(&absolute)
        .map_err(|()| anyhow::anyhow!("{} is not an absolute path", absolute.display()))?
        .to_string())
}

async fn register_model(args: RegisterModelArgs, output: &Output) -> Result<()> {
    unique(&args.agreements, "agreement")?;
    let location = match &args.location {
        Some(location) => location.clone(),
        None => file_url(&args.model)?,
    };
    if !args.model.is_file() {
        bail!("the model {} is not a file", args.model.display());
    }
    let app = std::fs::read(&args.app)
        .with_context(|| format!("reading the app {}", args.app.display()))?;
    let app_sha256 = compute::Algorithm::File(app).sha256();
    std::fs::create_dir_all(&args.logs)
        .with_context(|| format!("creating {}", args.logs.display()))?;
    let suite = open_suite(&args.suite).await?;
    let sender = sender(&suite.connection, &args.signer)?;
    let mut parts = Vec::new();
    for id in &args.agreements {
        if args.wait > 0 {
            federated::wait_done(&suite, &sender, *id, Duration::from_secs(args.wait)).await?;
        }
        let part = federated::round_log(
            &suite,
            &sender,
            *id,
            &args.logs.join(format!("round-log-{id}.json")),
        )
        .await?;
        output.note(&format!(
            "agreement {id}: {} rounds served by {}, round log {} (signature checked)",
            part.member.rounds, part.member.provider, part.member.round_log
        ));
        parts.push(part);
    }
    let training = federated::training(&parts, &alloy::primitives::hex::encode(app_sha256))?;
    let model = federated::Model {
        path: args.model.clone(),
        location,
        content_type: args.content_type.clone(),
        name: args.name.clone(),
        description: args.description.clone(),
        license: args.license.clone(),
    };
    let published = federated::register_model(
        &suite,
        &sender,
        &KeeperClient::new(&args.keeper),
        &model,
        &training,
        args.seed.unwrap_or_else(|| B256::from(crate::rand_seed())),
        &TerminalProgress::new(output),
    )
    .await?;
    output.model_registered(&RegisteredModel {
        did: published.did,
        checksum: published.checksum,
        url: published.url,
        transaction: published.transaction,
        training,
    })
}
