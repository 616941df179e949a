//! `insitu`: the command line of the insitu network.
//!
//! Operators deploy the contract suite and govern it; consumers and providers inspect assets and
//! agreements, refund agreements that were not served and withdraw what they are owed. Every
//! command takes `--json` for scripts; otherwise it prints for people, and shows each transaction
//! as it is sent and confirmed.
//!
//! Keys never come from the command line: `INSITU_PRIVATE_KEY` (hex), or `--keystore` with an
//! encrypted JSON keystore whose password is prompted or read from `--password-file`.

mod demo;
mod federated;
mod federated_demo;
mod output;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::output::{Output, TerminalProgress};
use alloy::primitives::{Address, B256, U256};
use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use insitu_bindings::deployment::{DeployOptions, Governance};
use insitu_client::{
    agreement, asset, compute,
    deploy::{
        DEFAULT_ADMIN_TRANSFER_DELAY, DEFAULT_TIMELOCK_DELAY, MAX_FEE_BPS, deploy_suite,
        journal::journal_path, unsafe_governance,
    },
    governance, keys,
    keys::{KeySource, Password},
    market,
    metadata::ServiceKind,
    payments,
    rpc::{self, Connection, Endpoint},
    suite::{Suite, default_addresses_path},
    tx::{DEFAULT_CONFIRMATION_TIMEOUT, Sender, TxOptions},
};

/// The insitu network from the command line: deploy and govern the contracts, inspect assets and
/// agreements, refund, withdraw.
///
/// Keys: set INSITU_PRIVATE_KEY to a private key (hex), or pass --keystore (an encrypted JSON
/// keystore; its password is prompted, or read from --password-file). TLS endpoints (https://,
/// wss://) are checked against the system's certificates, or those of the file SSL_CERT_FILE names.
#[derive(Debug, Parser)]
#[command(name = "insitu", version, propagate_version = true)]
struct Cli {
    /// Print one JSON object on standard output instead of text (errors too, as {"error": ...}).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy and wire the contract suite, and write its addresses file.
    Deploy(Box<DeployArgs>),
    /// Run the end-to-end demo on a local anvil node it starts.
    Demo(DemoArgs),
    /// Publish an asset: seal its file locations to the keeper, have the keeper store its
    /// metadata document, register it on chain with the keeper as provider.
    Publish(PublishArgs),
    /// Buy a service of an asset on its keeper's signed offer, paying into escrow in one
    /// transaction.
    Buy(BuyArgs),
    /// Download a file of an asset you bought, or of the result of a compute job you bought
    /// (resumes an interrupted download, checks its SHA-256).
    Download(DownloadArgs),
    /// Buy compute on an asset and run your algorithm where the data lives: orders the job (a
    /// signed request with the algorithm and its parameters), follows its phases and its logs
    /// (when the asset lets you see them) until it ends.
    Compute(ComputeArgs),
    /// A compute job you ordered: its status, its logs, or stop it.
    #[command(subcommand)]
    Job(JobCommand),
    /// Federated learning across several providers: order the jobs that join your aggregator,
    /// then register the trained model once every provider's round log checks.
    #[command(subcommand)]
    Federated(federated::FederatedCommand),
    /// Get a short-lived token for an agreement you bought, and a URL with it, for players and
    /// scripts that cannot sign each request.
    AccessToken(AccessTokenArgs),
    /// Search a catalog for assets: words in their name, description, tags and author, with
    /// filters; prints the matches, their prices and the counts by field.
    Search(SearchArgs),
    /// Assets in the registry.
    #[command(subcommand)]
    Asset(AssetCommand),
    /// Agreements: their conditions, deadlines and what to do next.
    #[command(subcommand)]
    Agreement(AgreementCommand),
    /// Refund an agreement its provider did not serve in time (anyone may; the consumer is paid).
    Refund(RefundArgs),
    /// Withdraw a credit (a payment a transfer could not deliver) or, with --fees, network fees.
    Withdraw(WithdrawArgs),
    /// The network fee.
    #[command(subcommand)]
    Fee(FeeCommand),
    /// The template registry.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Keys: create an encrypted keystore, show a keystore's account.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print a shell completion script (e.g. `insitu completions bash > /etc/bash_completion.d/insitu`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `insitu search`.
#[derive(Debug, clap::Args)]
struct SearchArgs {
    /// Words to find (all must match; the last may be the start of a word). None: everything.
    query: Option<String>,
    /// The catalog's URL.
    #[arg(long, env = "INSITU_CATALOG", default_value = "http://127.0.0.1:8600")]
    catalog: String,
    /// Only this chain id.
    #[arg(long)]
    chain: Option<u64>,
    /// Only this type: dataset, algorithm or result.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Only assets sold with this service: access or compute.
    #[arg(long)]
    service: Option<String>,
    /// Only assets priced in this token.
    #[arg(long)]
    token: Option<Address>,
    /// Lowest price, in the token's smallest unit.
    #[arg(long)]
    price_min: Option<U256>,
    /// Highest price, in the token's smallest unit.
    #[arg(long)]
    price_max: Option<U256>,
    /// Only assets this provider (keeper) serves.
    #[arg(long)]
    provider: Option<Address>,
    /// Only this licence.
    #[arg(long)]
    license: Option<String>,
    /// Only assets with this tag (repeat for several; all must be there).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// relevance, newest, price_asc, price_desc or popularity.
    #[arg(long)]
    sort: Option<String>,
    /// Results per page (1 to 100).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// The next page: the cursor a previous search printed.
    #[arg(long)]
    cursor: Option<String>,
}

/// What `insitu demo` runs.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Federated learning instead: three providers, each with its keeper, train the example
    /// model for the consumer, each paid through its own escrow (needs the Flower environment of
    /// script/flower-deps.sh).
    #[arg(long)]
    federated: bool,
    /// The Flower environment (federated demo).
    #[arg(long, default_value = "target/flower-venv", requires = "federated")]
    flower_environment: PathBuf,
    /// The federated example's folder: app/, make_partitions.py, consumer_tools.py.
    #[arg(long, default_value = "examples/federated", requires = "federated")]
    example: PathBuf,
    /// The folder holding the insitu_flower package the keepers run.
    #[arg(long, default_value = "federated", requires = "federated")]
    flower_package: PathBuf,
    /// Rounds of federated training (1 to 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20), requires = "federated")]
    rounds: u32,
}

/// Which chain, and which deployment on it.
#[derive(Debug, Args)]
struct ChainArgs {
    /// JSON-RPC endpoint: http://, https://, ws:// or wss://.
    #[arg(long, env = "INSITU_RPC_URL", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// Refuse to run unless the endpoint serves this chain id.
    #[arg(long)]
    chain_id: Option<u64>,
}

/// The addresses file of the deployment to use.
#[derive(Debug, Args)]
struct SuiteArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The deployment's addresses file (default: deployments/<chain id>.json).
    #[arg(long, env = "INSITU_ADDRESSES")]
    addresses: Option<PathBuf>,
}

/// The sending account's key and how transactions are awaited.
#[derive(Debug, Args)]
struct SignerArgs {
    /// Encrypted JSON keystore of the sending account (instead of INSITU_PRIVATE_KEY).
    #[arg(long, env = "INSITU_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// File whose first line is the keystore's password (prompted when omitted).
    #[arg(long, requires = "keystore")]
    password_file: Option<PathBuf>,
    /// Confirmations to wait for on every transaction.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    confirmations: u64,
    /// Seconds to wait for a transaction's confirmations before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_CONFIRMATION_TIMEOUT.as_secs())]
    confirmation_timeout: u64,
}

/// Who holds the governor and admin roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GovernanceKind {
    /// A governance timelock: every change is scheduled by the proposer (--governor) and applies
    /// after --timelock-delay seconds.
    Timelock,
    /// The --governor account itself, changes apply at once (development chains only).
    Account,
}

#[derive(Debug, Args)]
struct DeployArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    signer: SignerArgs,
    /// Who governs templates and fees: a timelock, or an account directly (development chains
    /// only: chain ids 31337 and 1337).
    #[arg(long, value_enum, default_value_t = GovernanceKind::Timelock)]
    governance: GovernanceKind,
    /// With a timelock, its proposer (e.g. a multisig), who schedules governance changes; with
    /// --governance account, the governing account. The deployer when omitted. When it is not the
    /// deployer, what it must send is printed.
    #[arg(long)]
    governor: Option<Address>,
    /// Seconds between scheduling a governance change and executing it (default 172800, two
    /// days; 0 only on development chains).
    #[arg(long, value_name = "SECONDS")]
    timelock_delay: Option<u64>,
    /// Seconds an admin-role transfer of the agreement store waits between start and acceptance.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ADMIN_TRANSFER_DELAY)]
    admin_transfer_delay: u32,
    /// Network fee in basis points of each price (at most 1000); needs --fee-receiver.
    #[arg(long)]
    fee_bps: Option<u16>,
    /// Receiver of the network fee; needs --fee-bps.
    #[arg(long)]
    fee_receiver: Option<Address>,
    /// Where to write the addresses file (default: deployments/<chain id>.json). The journal of
    /// an interrupted deployment is kept next to it (<name>.journal.json) until it completes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Deploy even if the addresses file already exists (it is replaced).
    #[arg(long)]
    overwrite: bool,
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The metadata document (JSON, schema `insitu-metadata/1`), with plain file locations
    /// (`file://`, `s3://` or `https://` URLs the keeper can read) and, for web locations,
    /// optional `headers` per file (an API token); both are sealed to the keeper before upload.
    metadata: PathBuf,
    /// The keeper's API (e.g. https://keeper.example).
    #[arg(long)]
    keeper: String,
    /// The seed of the asset's id (32 bytes, hex; random when omitted).
    #[arg(long)]
    seed: Option<B256>,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

/// A service of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Service {
    /// Download the files.
    Access,
    /// Run an algorithm where the data is.
    Compute,
}

#[derive(Debug, Args)]
struct BuyArgs {
    /// The asset's id (32 bytes, hex).
    did: B256,
    /// The service to buy.
    #[arg(long, value_enum, default_value_t = Service::Access)]
    service: Service,
    /// Seconds the provider has to serve (within the offer's bounds; 0 takes the longest).
    #[arg(long, default_value_t = 0)]
    timeout: u32,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(Debug, Args)]
struct DownloadArgs {
    /// The agreement's id (32 bytes, hex).
    agreement: B256,
    /// Where to write the file.
    #[arg(short, long)]
    out: PathBuf,
    /// Which file of the asset (its index in the metadata document).
    #[arg(long, default_value_t = 0)]
    file: usize,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(Debug, Args)]
struct ComputeArgs {
    /// The asset's id (32 bytes, hex).
    did: B256,
    /// The algorithm: a file (e.g. a Python script), or the id of an algorithm asset published
    /// at the data's keeper.
    #[arg(long)]
    algorithm: String,
    /// The runtime it runs in (one the asset's compute policy lists).
    #[arg(long, default_value = "python3")]
    runtime: String,
    /// A parameter, NAME=VALUE (repeatable); the algorithm reads them as JSON from
    /// $INSITU_PARAMS.
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Seconds the provider has to deliver the result (within the offer's bounds; 0 takes the
    /// longest); past it, you can refund the agreement.
    #[arg(long, default_value_t = 0)]
    timeout: u32,
    /// Order on an agreement you bought already (its id) instead of buying.
    #[arg(long)]
    agreement: Option<B256>,
    /// Return once the job is queued, without following it.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

/// `NAME=VALUE`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("{text:?} has no name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Where the job stands: phase, runs, outcome, result.
    Status(JobArgs),
    /// The job's logs so far (when the asset lets you see them).
    Logs(JobArgs),
    /// Stop the job (SIGTERM, then SIGKILL after the provider's grace).
    Stop(JobArgs),
    /// Follow the job until it ends.
    Wait(JobArgs),
}

#[derive(Debug, Args)]
struct JobArgs {
    /// The compute agreement's id (32 bytes, hex).
    agreement: B256,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(Debug, Args)]
struct AccessTokenArgs {
    /// The agreement's id (32 bytes, hex).
    agreement: B256,
    /// Which file the URL names (the token is good for every file of the agreement).
    #[arg(long, default_value_t = 0)]
    file: usize,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(Debug, Subcommand)]
enum AssetCommand {
    /// Show an asset: owner, metadata, providers, offer epoch.
    Show {
        /// The asset's id (32 bytes, hex).
        did: B256,
        #[command(flatten)]
        suite: SuiteArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AgreementCommand {
    /// Show an agreement: every condition's state and deadline, the terms, and what to do next.
    Show {
        /// The agreement's id (32 bytes, hex).
        id: B256,
        /// Whose next step to show (default: the account of INSITU_PRIVATE_KEY, if set).
        #[arg(long = "as", value_name = "ADDRESS")]
        party: Option<Address>,
        /// Look for the agreement's creation from this block (default: the deployment's block).
        #[arg(long)]
        from_block: Option<u64>,
        #[command(flatten)]
        suite: SuiteArgs,
    },
}

#[derive(Debug, Args)]
struct RefundArgs {
    /// The agreement's id (32 bytes, hex).
    id: B256,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(Debug, Args)]
struct WithdrawArgs {
    /// The token (default: the zero address, native ETH).
    #[arg(long, default_value_t = Address::ZERO)]
    token: Address,
    /// Where to send it (default: the sending account).
    #[arg(long)]
    to: Option<Address>,
    /// Withdraw the network fees accrued (the sender must be the fee receiver).
    #[arg(long)]
    fees: bool,
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(Debug, Subcommand)]
enum FeeCommand {
    /// Show the network fee and, for each --token, the fees accrued.
    Show {
        /// A token whose accrued fees to show (zero address: ETH); repeatable.
        #[arg(long)]
        token: Vec<Address>,
        #[command(flatten)]
        suite: SuiteArgs,
    },
    /// Set the network fee: directly when the sender governs, else through the governance
    /// timelock (run once to schedule, again after the delay to execute).
    Set {
        /// Basis points of each price (at most 1000).
        #[arg(long)]
        bps: u16,
        /// Who withdraws the fees.
        #[arg(long)]
        receiver: Address,
        #[command(flatten)]
        suite: SuiteArgs,
        #[command(flatten)]
        signer: SignerArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an encrypted JSON keystore holding a new random key (never overwrites a file).
    New {
        /// Where to write it.
        #[arg(long)]
        keystore: PathBuf,
        /// File whose first line is the password (prompted twice when omitted).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Show the account (address and public key) of a keystore, or of INSITU_PRIVATE_KEY.
    Show {
        /// The keystore (INSITU_PRIVATE_KEY when omitted).
        #[arg(long)]
        keystore: Option<PathBuf>,
        /// File whose first line is the keystore's password (prompted when omitted).
        #[arg(long, requires = "keystore")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// List the suite's templates and every template proposed since the deployment.
    List {
        #[command(flatten)]
        suite: SuiteArgs,
    },
    /// Propose a template (anyone may); one already proposed is reported, not proposed again.
    Propose {
        /// The template contract.
        template: Address,
        #[command(flatten)]
        suite: SuiteArgs,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Approve a proposed template: directly when the sender governs, else through the governance
    /// timelock (run once to schedule, again after the delay to execute).
    Approve {
        /// The template contract.
        template: Address,
        #[command(flatten)]
        suite: SuiteArgs,
        #[command(flatten)]
        signer: SignerArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let output = Output::new(cli.json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return output.fail(&error.to_string()),
    };
    match runtime.block_on(run(cli.command, &output)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Errors of the HTTP client quote the URL, which may hold an API key.
            let message = format!("{error:#}");
            let message = match ENDPOINT.get() {
                Some(endpoint) => endpoint.scrub(&message),
                None => message,
            };
            output.fail(&message)
        }
    }
}

/// `insitu compute`: buys (unless given an agreement), orders, follows.
async fn run_compute(args: ComputeArgs, output: &Output) -> Result<()> {
    // A path that exists is a file; otherwise an id is an algorithm asset.
    let path = PathBuf::from(&args.algorithm);
    let asset = args
        .algorithm
        .parse::<B256>()
        .ok()
        .filter(|_| !path.exists());
    let file = match asset {
        Some(_) => Vec::new(),
        None => std::fs::read(&path)
            .with_context(|| format!("reading the algorithm {}", path.display()))?,
    };
    let suite = open_suite(&args.suite).await?;
    let algorithm = match asset {
        Some(did) => compute::algorithm_asset(&suite, did).await?,
        None => compute::Algorithm::File(file),
    };
    let order = compute::Order {
        algorithm,
        runtime: args.runtime.clone(),
        params: args.params.iter().cloned().collect(),
    };
    let sender = sender(&suite.connection, &args.signer)?;
    let (id, bought) = match args.agreement {
        Some(id) => (id, None),
        None => {
            let bought = market::buy(
                &suite,
                &sender,
                args.did,
                ServiceKind::Compute,
                args.timeout,
                &TerminalProgress::new(output),
            )
            .await?;
            output.note(&format!(
                "bought compute: agreement {}",
                bought.quote.agreement_id
            ));
            (bought.quote.agreement_id, Some(bought))
        }
    };
    let queued = compute::submit(&suite, &sender, id, &order).await?;
    output.note(&format!(
        "job queued (algorithm sha256 {})",
        queued.algorithm_sha256
    ));
    let status = if args.no_wait {
        queued
    } else {
        follow(&suite, &sender, id, output).await?
    };
    output.job(id, bought.as_ref(), &status)
}

/// Follows job `id` until it ends, telling each phase and printing new log lines (unless the
/// asset keeps them private).
async fn follow(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    output: &Output,
) -> Result<compute::JobStatus> {
    let (mut phase, mut shown, mut logs_allowed) = (String::new(), 0_usize, true);
    loop {
        let status = compute::status(suite, sender, id).await?;
        if status.phase != phase {
            output.note(&format!("job {}", status.phase));
            phase.clone_from(&status.phase);
        }
        if logs_allowed
            && matches!(
                status.phase.as_str(),
                "running" | "publishing" | "settling" | "done" | "failed" | "stopped"
            )
        {
            match compute::logs(suite, sender, id).await {
                Ok(text) if text.len() > shown => {
                    for line in text[shown..].lines() {
                        output.note(&format!("  | {line}"));
                    }
                    shown = text.len();
                }
                Ok(_) => {}
                Err(market::MarketError::Refused { code, .. }) if code == "logs_private" => {
                    output.note("(the asset keeps job logs private)");
                    logs_allowed = false;
                }
                Err(market::MarketError::Refused { code, .. }) if code == "no_logs" => {}
                Err(error) => return Err(error.into()),
            }
        }
        if status.is_final() {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn job(command: JobCommand, output: &Output) -> Result<()> {
    let args = match &command {
        JobCommand::Status(args)
        | JobCommand::Logs(args)
        | JobCommand::Stop(args)
        | JobCommand::Wait(args) => args,
    };
    let suite = open_suite(&args.suite).await?;
    let sender = sender(&suite.connection, &args.signer)?;
    let id = args.agreement;
    match command {
        JobCommand::Status(_) => output.job(id, None, &compute::status(&suite, &sender, id).await?),
        JobCommand::Logs(_) => output.logs(&compute::logs(&suite, &sender, id).await?),
        JobCommand::Stop(_) => output.job(id, None, &compute::stop(&suite, &sender, id).await?),
        JobCommand::Wait(_) => {
            let status = follow(&suite, &sender, id, output).await?;
            output.job(id, None, &status)
        }
    }
}

/// The endpoint in use, whose URL is kept out of error messages.
static ENDPOINT: std::sync::OnceLock<Endpoint> = std::sync::OnceLock::new();

async fn run(command: Command, output: &Output) -> Result<()> {
    match command {
        Command::Deploy(args) => deploy(*args, output).await,
        Command::Demo(args) => demo(output, args).await,
        Command::Publish(args) => {
            let source = std::fs::read(&args.metadata)
                .with_context(|| format!("reading {}", args.metadata.display()))?;
            let suite = open_suite(&args.suite).await?;
            let sender = sender(&suite.connection, &args.signer)?;
            let seed = args.seed.unwrap_or_else(|| B256::from(rand_seed()));
            let published = market::publish(
                &suite,
                &sender,
                &market::KeeperClient::new(&args.keeper),
                &source,
                seed,
                &TerminalProgress::new(output),
            )
            .await?;
            output.published(&published)
        }
        Command::Buy(args) => {
            let suite = open_suite(&args.suite).await?;
            let sender = sender(&suite.connection, &args.signer)?;
            let service = match args.service {
                Service::Access => ServiceKind::Access,
                Service::Compute => ServiceKind::Compute,
            };
            let bought = market::buy(
                &suite,
                &sender,
                args.did,
                service,
                args.timeout,
                &TerminalProgress::new(output),
            )
            .await?;
            output.bought(&bought)
        }
        Command::Download(args) => {
            let suite = open_suite(&args.suite).await?;
            let sender = sender(&suite.connection, &args.signer)?;
            let bar = output::DownloadBar::new(output);
            let mut on_bytes = |event| bar.event(event);
            let bought = agreement::show(&suite, args.agreement, None).await?;
            let downloaded = if bought.template == suite.addresses.compute_template {
                compute::download_result(
                    &suite,
                    &sender,
                    args.agreement,
                    args.file,
                    &args.out,
                    &mut on_bytes,
                )
                .await?
            } else {
                market::download(
                    &suite,
                    &sender,
                    args.agreement,
                    args.file,
                    &args.out,
                    &mut on_bytes,
                )
                .await?
            };
            bar.finish();
            output.downloaded(&downloaded)
        }
        Command::Compute(args) => run_compute(args, output).await,
        Command::Job(command) => job(command, output).await,
        Command::Federated(command) => federated::run(command, output).await,
        Command::AccessToken(args) => {
            let suite = open_suite(&args.suite).await?;
            let sender = sender(&suite.connection, &args.signer)?;
            let token = market::access_token(&suite, &sender, args.agreement, args.file).await?;
            output.access_token(&token)
        }
        Command::Search(args) => {
            let query = insitu_client::catalog::SearchQuery {
                q: args.query,
                chain: args.chain,
                kind: args.kind,
                service: args.service,
                token: args.token.map(|token| token.to_string()),
                price_min: args.price_min.map(|price| price.to_string()),
                price_max: args.price_max.map(|price| price.to_string()),
                provider: args.provider.map(|provider| provider.to_string()),
                license: args.license,
                tags: (!args.tags.is_empty()).then(|| args.tags.join(",")),
                sort: args.sort,
                limit: Some(args.limit),
                cursor: args.cursor,
            };
            let page = insitu_client::catalog::CatalogClient::new(&args.catalog)
                .search(&query)
                .await?;
            output.search(&page)
        }
        Command::Asset(AssetCommand::Show { did, suite }) => {
            let suite = open_suite(&suite).await?;
            let info = asset::show(&suite, did).await?;
            output.asset(&info)
        }
        Command::Agreement(AgreementCommand::Show {
            id,
            party,
            from_block,
            suite,
        }) => {
            let suite = open_suite(&suite).await?;
            let party = match party {
                Some(party) => Some(party),
                None => keys::load(&KeySource::Env).ok().map(|key| key.address()),
            };
            let info = agreement::show(&suite, id, from_block).await?;
            output.agreement(&info, party)
        }
        Command::Refund(args) => {
            let suite = open_suite(&args.suite).await?;
            let sender = sender(&suite.connection, &args.signer)?;
            let refunded =
                payments::refund(&suite, &sender, args.id, &TerminalProgress::new(output)).await?;
            output.refunded(&refunded)
        }
        Command::Withdraw(args) => {
            let suite = open_suite(&args.suite).await?;
            let sender = sender(&suite.connection, &args.signer)?;
            let to = args.to.unwrap_or(sender.address());
            let progress = TerminalProgress::new(output);
            let withdrawn = if args.fees {
                payments::withdraw_fees(&suite, &sender, args.token, to, &progress).await?
            } else {
                payments::withdraw(&suite, &sender, args.token, to, &progress).await?
            };
            output.withdrawn(&withdrawn)
        }
        Command::Fee(FeeCommand::Show { token, suite }) => {
            let suite = open_suite(&suite).await?;
            let info = governance::fee(&suite, &token).await?;
            output.fee(&info)
        }
        Command::Fee(FeeCommand::Set {
            bps,
            receiver,
            suite,
            signer,
        }) => {
            let suite = open_suite(&suite).await?;
            let sender = sender(&suite.connection, &signer)?;
            let outcome = governance::set_fee(
                &suite,
                &sender,
                receiver,
                bps,
                &TerminalProgress::new(output),
            )
            .await?;
            output.outcome("set the network fee", &outcome)
        }
        Command::Template(TemplateCommand::List { suite }) => {
            let suite = open_suite(&suite).await?;
            let templates = governance::list_templates(&suite).await?;
            output.templates(&templates)
        }
        Command::Template(TemplateCommand::Propose {
            template,
            suite,
            signer,
        }) => {
            let suite = open_suite(&suite).await?;
            let sender = sender(&suite.connection, &signer)?;
            let outcome = governance::propose_template(
                &suite,
                &sender,
                template,
                &TerminalProgress::new(output),
            )
            .await?;
            output.outcome("propose the template", &outcome)
        }
        Command::Template(TemplateCommand::Approve {
            template,
            suite,
            signer,
        }) => {
            let suite = open_suite(&suite).await?;
            let sender = sender(&suite.connection, &signer)?;
            let outcome = governance::approve_template(
                &suite,
                &sender,
                template,
                &TerminalProgress::new(output),
            )
            .await?;
            output.outcome("approve the template", &outcome)
        }
        Command::Key(KeyCommand::New {
            keystore,
            password_file,
        }) => {
            let password = match &password_file {
                Some(file) => keys::read_password_file(file)?,
                None => {
                    let first = rpassword::prompt_password("password of the new keystore: ")
                        .context("reading the password (or pass --password-file)")?;
                    let again = rpassword::prompt_password("the same password again: ")
                        .context("reading the password")?;
                    if first != again {
                        bail!("the two passwords differ: nothing was written");
                    }
                    first
                }
            };
            let signer = keys::new_keystore(&keystore, &password)?;
            output.key(&signer, Some(&keystore))
        }
        Command::Key(KeyCommand::Show {
            keystore,
            password_file,
        }) => {
            let source = key_source(&SignerArgs {
                keystore: keystore.clone(),
                password_file,
                confirmations: 1,
                confirmation_timeout: DEFAULT_CONFIRMATION_TIMEOUT.as_secs(),
            })?;
            let signer = keys::load(&source)?;
            output.key(&signer, keystore.as_deref())
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "insitu", &mut script);
            output.completions(&shell.to_string(), &String::from_utf8_lossy(&script))
        }
    }
}

async fn connect(chain: &ChainArgs) -> Result<Connection> {
    let endpoint = Endpoint::parse(&chain.rpc_url)?;
    let _ = ENDPOINT.set(endpoint.clone());
    Ok(rpc::connect(&endpoint, chain.chain_id).await?)
}

async fn open_suite(args: &SuiteArgs) -> Result<Suite> {
    let connection = connect(&args.chain).await?;
    let path = args
        .addresses
        .clone()
        .unwrap_or_else(|| default_addresses_path(connection.chain_id));
    Ok(Suite::open(connection, &path).await?)
}

fn key_source(args: &SignerArgs) -> Result<KeySource> {
    Ok(match &args.keystore {
        None => KeySource::Env,
        Some(path) => KeySource::Keystore {
            path: path.clone(),
            password: match &args.password_file {
                Some(file) => Password::File(file.clone()),
                None => Password::Given(
                    rpassword::prompt_password(format!(
                        "password of the keystore {}: ",
                        path.display()
                    ))
                    .context("reading the keystore password (or pass --password-file)")?,
                ),
            },
        },
    })
}

fn tx_options(args: &SignerArgs) -> TxOptions {
    TxOptions {
        confirmations: args.confirmations,
        timeout: Duration::from_secs(args.confirmation_timeout),
    }
}

fn sender(connection: &Connection, args: &SignerArgs) -> Result<Sender> {
    let signer = keys::load(&key_source(args)?)?;
    Ok(Sender::new(
        connection.provider.clone(),
        connection.chain_id,
        signer,
        tx_options(args),
    ))
}

/// 32 random bytes from the operating system.
fn rand_seed() -> [u8; 32] {
    rand::random()
}

/// The network fee of the deployment, refusing incomplete or out-of-range arguments.
fn network_fee(bps: Option<u16>, receiver: Option<Address>) -> Result<Option<(Address, u16)>> {
    match (bps, receiver) {
        (None, None) => Ok(None),
        (Some(bps), _) if bps > MAX_FEE_BPS => {
            bail!("--fee-bps {bps} is above the maximum network fee of {MAX_FEE_BPS} bps")
        }
        (Some(_), Some(receiver)) if receiver.is_zero() => {
            bail!("--fee-receiver must not be the zero address")
        }
        (Some(0), Some(_)) => bail!("--fee-receiver needs a non-zero --fee-bps"),
        (Some(bps), Some(receiver)) => Ok(Some((receiver, bps))),
        (Some(0), None) => Ok(None),
        (Some(_), None) => bail!("--fee-bps needs --fee-receiver"),
        (None, Some(_)) => bail!("--fee-receiver needs --fee-bps"),
    }
}

async fn deploy(args: DeployArgs, output: &Output) -> Result<()> {
    // Everything that can be checked without the chain is checked before connecting.
    let network_fee = network_fee(args.fee_bps, args.fee_receiver)?;
    let signer = keys::load(&key_source(&args.signer)?)?;
    let deployer = signer.address();
    let governor = args.governor.unwrap_or(deployer);
    if governor.is_zero() {
        bail!("--governor must not be the zero address");
    }
    let governance = match (args.governance, args.timelock_delay) {
        (GovernanceKind::Timelock, delay) => Governance::Timelock {
            proposer: governor,
            delay: delay.unwrap_or(DEFAULT_TIMELOCK_DELAY),
        },
        (GovernanceKind::Account, None) => Governance::Account(governor),
        (GovernanceKind::Account, Some(_)) => {
            bail!("--timelock-delay needs --governance timelock")
        }
    };
    let options = DeployOptions {
        governance,
        admin_transfer_delay: args.admin_transfer_delay,
        network_fee,
    };

    let connection = connect(&args.chain).await?;
    let chain_id = connection.chain_id;
    if let Some(problem) = unsafe_governance(chain_id, &options) {
        bail!("{problem}");
    }
    let out = args.out.unwrap_or_else(|| default_addresses_path(chain_id));
    let journal = journal_path(&out);
    check_output(&out, args.overwrite)?;
    output.note(&format!(
        "deployer {deployer} on chain {chain_id} ({})",
        connection.endpoint
    ));
    if journal.exists() {
        output.note(&format!(
            "resuming the interrupted deployment recorded in {}",
            journal.display()
        ));
    }

    let sender = Sender::new(
        connection.provider.clone(),
        chain_id,
        signer,
        tx_options(&args.signer),
    );
    let progress = TerminalProgress::new(output);
    let (deployed, journal) = deploy_suite(&sender, options, Some(&journal), &progress).await?;
    progress.finish();
    deployed
        .deployment
        .write(&out)
        .with_context(|| format!("writing {}", out.display()))?;
    journal.remove()?;
    output.deployed(&deployed, deployer, &out)
}

/// Refuses, before anything is sent, an addresses file that exists (a second deployment would
/// replace the record of the first) unless `overwrite`, and a place where it cannot be written.
fn check_output(out: &std::path::Path, overwrite: bool) -> Result<()> {
    if out.exists() && !overwrite {
        bail!(
            "{} exists: a suite is already deployed on this chain (pass --overwrite to deploy \
             another one and replace the file)",
            out.display()
        );
    }
    let dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {} for the addresses file", dir.display()))?;
    tempfile_probe(&dir)
}

fn tempfile_probe(dir: &std::path::Path) -> Result<()> {
    let probe = dir.join(format!(".insitu-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write the addresses file in {}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

async fn demo(output: &Output, args: DemoArgs) -> Result<()> {
    let log = |line: &str| output.note(line);
    if args.federated {
        let options = federated_demo::FederatedOptions {
            environment: absolute(&args.flower_environment)?,
            example: absolute(&args.example)?,
            package: absolute(&args.flower_package)?,
            rounds: args.rounds,
        };
        let report = tokio::select! {
            report = federated_demo::run(&options, &log) => report?,
            _ = tokio::signal::ctrl_c() => {
                bail!("interrupted: anvil, the keepers and the SuperLink are stopped")
            }
        };
        return output.federated_demo(&report);
    }
    let report = tokio::select! {
        report = demo::run(&log) => report?,
        _ = tokio::signal::ctrl_c() => bail!("interrupted: anvil and the keeper are stopped"),
    };
    output.demo(&report)
}

/// `path` made absolute against the current folder (the demo's keepers run elsewhere).
fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(std::env::current_dir()?.join(path))
}
