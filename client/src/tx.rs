//! Sending transactions: prepared and signed locally, broadcast raw, awaited with a number of
//! confirmations and a time out, reported step by step to a [`Progress`].
//!
//! Preparing a transaction estimates its gas on the node, so a transaction that would revert is
//! never sent: the error names the step and the decoded contract error
//! ([`insitu_bindings::errors::decode_revert`]). The hash of a signed transaction is known before
//! it is broadcast, which lets a caller record it first (see [`crate::deploy`]'s journal).

use std::time::Duration;

use alloy::{
    eips::Encodable2718,
    network::{Ethereum, EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, B256, Bytes},
    providers::{DynProvider, PendingTransactionBuilder, PendingTransactionError, Provider},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    transports::TransportError,
};
use insitu_bindings::errors::{Revert, decode_revert};

/// Default number of confirmations awaited.
pub const DEFAULT_CONFIRMATIONS: u64 = 1;
/// Default time a transaction may take to be confirmed.
pub const DEFAULT_CONFIRMATION_TIMEOUT: Duration = Duration::from_secs(300);
/// Gas limit margin over the node's estimate, in percent.
pub const GAS_MARGIN_PERCENT: u64 = 20;

/// How transactions are awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOptions {
    /// Blocks including the transaction's to wait for (at least 1).
    pub confirmations: u64,
    /// How long to wait for them before failing with [`TxError::NotConfirmed`].
    pub timeout: Duration,
}

impl Default for TxOptions {
    fn default() -> Self {
        Self {
            confirmations: DEFAULT_CONFIRMATIONS,
            timeout: DEFAULT_CONFIRMATION_TIMEOUT,
        }
    }
}

/// What happened to a transaction, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// The transaction was broadcast.
    Sent {
        /// The step.
        label: String,
        /// Its hash.
        hash: B256,
    },
    /// The transaction has the required confirmations.
    Confirmed {
        /// The step.
        label: String,
        /// Its hash.
        hash: B256,
        /// The block that included it.
        block: u64,
        /// Gas it used.
        gas_used: u64,
    },
    /// A step needed no transaction.
    Skipped {
        /// The step.
        label: String,
        /// Why.
        reason: String,
    },
}

/// Receives [`TxEvent`]s (the CLI shows them; libraries and tests may ignore them).
pub trait Progress: Send + Sync {
    /// Called for each event, in order.
    fn report(&self, event: &TxEvent);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn report(&self, _event: &TxEvent) {}
}

/// Why a transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The node could not be reached or answered with an error.
    #[error("`{label}`: RPC error: {source}")]
    Rpc {
        /// The step.
        label: String,
        /// What failed.
        #[source]
        source: TransportError,
    },
    /// The node's gas estimation says the transaction would revert; nothing was sent.
    #[error("`{label}` would revert: {reason}")]
    WouldRevert {
        /// The step.
        label: String,
        /// The decoded revert.
        reason: Revert,
    },
    /// The sender cannot pay for the transaction; nothing was sent.
    #[error("`{label}`: the sender {sender} cannot pay for it: {message}")]
    InsufficientFunds {
        /// The step.
        label: String,
        /// The account.
        sender: Address,
        /// The node's words.
        message: String,
    },
    /// Signing failed.
    #[error("`{label}`: signing failed: {reason}")]
    Signing {
        /// The step.
        label: String,
        /// Why.
        reason: String,
    },
    /// The transaction was sent but not confirmed in time (it may still be mined later).
    #[error(
        "`{label}` (transaction {hash}) did not get {confirmations} confirmation(s) within {} s",
        timeout.as_secs()
    )]
    NotConfirmed {
        /// The step.
        label: String,
        /// The transaction.
        hash: B256,
        /// Confirmations awaited.
        confirmations: u64,
        /// How long was waited.
        timeout: Duration,
    },
    /// Waiting for the receipt failed for another reason.
    #[error("`{label}` (transaction {hash}): waiting for the receipt: {source}")]
    Receipt {
        /// The step.
        label: String,
        /// The transaction.
        hash: B256,
        /// What failed.
        #[source]
        source: PendingTransactionError,
    },
    /// The transaction was mined but reverted.
    #[error("`{label}` reverted (transaction {hash})")]
    Reverted {
        /// The step.
        label: String,
        /// The transaction.
        hash: B256,
    },
}

/// A signed transaction, ready to broadcast.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The step.
    pub label: String,
    /// The transaction hash.
    pub hash: B256,
    /// The nonce it uses.
    pub nonce: u64,
    /// The signed transaction (EIP-2718 encoding), for a rebroadcast.
    pub raw: Bytes,
}

/// Signs and sends transactions from one account.
#[derive(Debug, Clone)]
pub struct Sender {
    provider: DynProvider,
    signer: PrivateKeySigner,
    wallet: EthereumWallet,
    address: Address,
    chain_id: u64,
    options: TxOptions,
}

impl Sender {
    /// A sender for `signer`'s account on the chain `chain_id` that `provider` serves.
    pub fn new(
        provider: DynProvider,
        chain_id: u64,
        signer: PrivateKeySigner,
        options: TxOptions,
    ) -> Self {
        let address = signer.address();
        Self {
            provider,
            wallet: EthereumWallet::from(signer.clone()),
            signer,
            address,
            chain_id,
            options,
        }
    }

    /// The sending account.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The key (to sign messages and typed data as this account).
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// The provider.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// How transactions are awaited.
    pub fn options(&self) -> TxOptions {
        self.options
    }

    /// Fills `request` (sender, chain id, `nonce` or the account's next one, gas with a margin over
    /// the node's estimate, fees) and signs it.
    ///
    /// # Errors
    ///
    /// [`TxError::WouldRevert`] when the estimation reverts, [`TxError::InsufficientFunds`],
    /// [`TxError::Rpc`] or [`TxError::Signing`].
    pub async fn prepare(
        &self,
        label: &str,
        request: TransactionRequest,
        nonce: Option<u64>,
    ) -> Result<Prepared, TxError> {
        let rpc = |source| TxError::Rpc {
            label: label.to_owned(),
            source,
        };
        let nonce = match nonce {
            Some(nonce) => nonce,
            None => self
                .provider
                .get_transaction_count(self.address)
                .pending()
                .await
                .map_err(rpc)?,
        };
        let mut request = request
            .with_from(self.address)
            .with_chain_id(self.chain_id)
            .with_nonce(nonce);
        let gas = self
            .provider
            .estimate_gas(request.clone())
            .await
            .map_err(|error| self.refused(label, error))?;
        request.set_gas_limit(gas.saturating_mul(100 + GAS_MARGIN_PERCENT) / 100);
        match self.provider.estimate_eip1559_fees().await {
            Ok(fees) => {
                request.set_max_fee_per_gas(fees.max_fee_per_gas);
                request.set_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
            }
            // A chain without EIP-1559 fees: a legacy gas price.
            Err(_) => request.set_gas_price(self.provider.get_gas_price().await.map_err(rpc)?),
        }
        let envelope = request
            .build(&self.wallet)
            .await
            .map_err(|error| TxError::Signing {
                label: label.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Prepared {
            label: label.to_owned(),
            hash: *envelope.tx_hash(),
            nonce,
            raw: envelope.encoded_2718().into(),
        })
    }

    /// Broadcasts a prepared transaction. A node that already knows it is not an error.
    ///
    /// # Errors
    ///
    /// [`TxError::InsufficientFunds`] or [`TxError::Rpc`].
    pub async fn broadcast(&self, prepared: &Prepared) -> Result<(), TxError> {
        match self.provider.send_raw_transaction(&prepared.raw).await {
            Ok(_) => Ok(()),
            Err(error) if is_already_known(&error) => Ok(()),
            Err(error) => Err(self.refused(&prepared.label, error)),
        }
    }

    /// Waits for the configured confirmations of `hash` and returns its receipt, refusing a
    /// reverted transaction.
    ///
    /// # Errors
    ///
    /// [`TxError::NotConfirmed`], [`TxError::Receipt`] or [`TxError::Reverted`].
    pub async fn confirm(&self, label: &str, hash: B256) -> Result<TransactionReceipt, TxError> {
        let pending =
            PendingTransactionBuilder::<Ethereum>::new(self.provider.root().clone(), hash)
                .with_required_confirmations(self.options.confirmations.max(1))
                .with_timeout(Some(self.options.timeout));
        // The watcher's own time out does not cover every wait (e.g. for further blocks), so the
        // whole wait is bounded here too.
        let waited = tokio::time::timeout(self.options.timeout, pending.get_receipt()).await;
        let receipt = match waited {
            Ok(Ok(receipt)) => receipt,
            Err(_) | Ok(Err(PendingTransactionError::TxWatcher(_))) => {
                return Err(TxError::NotConfirmed {
                    label: label.to_owned(),
                    hash,
                    confirmations: self.options.confirmations.max(1),
                    timeout: self.options.timeout,
                });
            }
            Ok(Err(source)) => {
                return Err(TxError::Receipt {
                    label: label.to_owned(),
                    hash,
                    source,
                });
            }
        };
        if !receipt.status() {
            return Err(TxError::Reverted {
                label: label.to_owned(),
                hash,
            });
        }
        Ok(receipt)
    }

    /// Prepares, broadcasts and confirms `request`, reporting to `progress`.
    ///
    /// # Errors
    ///
    /// See [`Sender::prepare`], [`Sender::broadcast`] and [`Sender::confirm`].
    pub async fn send(
        &self,
        label: &str,
        request: TransactionRequest,
        progress: &dyn Progress,
    ) -> Result<TransactionReceipt, TxError> {
        let prepared = self.prepare(label, request, None).await?;
        self.broadcast(&prepared).await?;
        progress.report(&TxEvent::Sent {
            label: label.to_owned(),
            hash: prepared.hash,
        });
        let receipt = self.confirm(label, prepared.hash).await?;
        progress.report(&confirmed(label, &receipt));
        Ok(receipt)
    }

    /// Names the step and decodes the revert when the node refused a transaction because it would
    /// revert; recognises a sender without funds; any other error stays an RPC error.
    fn refused(&self, label: &str, error: TransportError) -> TxError {
        if let Some(data) = error
            .as_error_resp()
            .and_then(|payload| payload.as_revert_data())
        {
            return TxError::WouldRevert {
                label: label.to_owned(),
                reason: decode_revert(&data),
            };
        }
        if let Some(payload) = error.as_error_resp() {
            let message = payload.message.to_lowercase();
            if message.contains("insufficient funds") || message.contains("lack of funds") {
                return TxError::InsufficientFunds {
                    label: label.to_owned(),
                    sender: self.address,
                    message: payload.message.to_string(),
                };
            }
        }
        TxError::Rpc {
            label: label.to_owned(),
            source: error,
        }
    }
}

/// The [`TxEvent::Confirmed`] of `receipt`.
pub fn confirmed(label: &str, receipt: &TransactionReceipt) -> TxEvent {
    TxEvent::Confirmed {
        label: label.to_owned(),
        hash: receipt.transaction_hash,
        block: receipt.block_number.unwrap_or_default(),
        gas_used: receipt.gas_used,
    }
}

fn is_already_known(error: &TransportError) -> bool {
    error.as_error_resp().is_some_and(|payload| {
        let message = payload.message.to_lowercase();
        message.contains("already known") || message.contains("already imported")
    })
}
