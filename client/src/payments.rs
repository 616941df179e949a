//! Moving money out of the payment condition: refunds of agreements that were not served,
//! withdrawals of credits (payments a receiver could not take at release) and of network fees.
//!
//! Every command checks on chain that it can succeed before it sends anything, and says why not.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, U256},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use insitu_bindings::{Condition, PaymentCondition};
use serde::Serialize;

use crate::{
    agreement::{self, AgreementError, AgreementInfo, ConditionState, NextStep},
    suite::Suite,
    tx::{Progress, Sender, TxError},
};

/// Why a refund or a withdrawal was refused or failed. Nothing was sent unless the error is
/// [`PaymentError::Tx`].
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The agreement could not be read.
    #[error(transparent)]
    Agreement(#[from] AgreementError),
    /// The agreement cannot be refunded now.
    #[error("agreement {id} cannot be refunded: {reason}")]
    NotRefundable {
        /// The agreement.
        id: B256,
        /// Why.
        reason: String,
    },
    /// Nothing to withdraw.
    #[error("{account} has nothing to withdraw in token {token}")]
    NothingToWithdraw {
        /// The account.
        account: Address,
        /// The token (zero address: ETH).
        token: Address,
    },
    /// Only the fee receiver withdraws fees.
    #[error("{account} is not the network fee receiver ({receiver} is)")]
    NotFeeReceiver {
        /// The caller.
        account: Address,
        /// The receiver.
        receiver: Address,
    },
    /// A withdrawal to the zero address.
    #[error("the recipient must not be the zero address")]
    ZeroRecipient,
    /// A read failed.
    #[error("reading the chain: {0}")]
    Call(#[from] alloy::contract::Error),
    /// A transaction failed.
    #[error(transparent)]
    Tx(#[from] TxError),
}

/// A refund made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refunded {
    /// The agreement.
    pub agreement: B256,
    /// Who got the money.
    pub payer: Address,
    /// The token (zero address: ETH).
    pub token: Address,
    /// How much.
    pub amount: U256,
    /// The transaction that aborted the timed-out service condition, when one was needed.
    pub abort_transaction: Option<B256>,
    /// The refund's transaction.
    pub transaction: B256,
}

/// Refunds agreement `id` to its consumer: the service condition timed out unfulfilled (it is
/// aborted first when it is not yet) and the payment is in escrow. Anyone may send it.
///
/// # Errors
///
/// [`PaymentError::NotRefundable`] when the agreement is not in that state (nothing sent), or see
/// [`PaymentError`].
pub async fn refund(
    suite: &Suite,
    sender: &Sender,
    id: B256,
    progress: &dyn Progress,
) -> Result<Refunded, PaymentError> {
    let info = agreement::show(suite, id, None).await?;
    let not_refundable = |reason: String| PaymentError::NotRefundable { id, reason };
    let (Some(payment), Some(service)) = (info.payment_condition(), info.service_condition())
    else {
        return Err(not_refundable(
            "it has no payment or no service condition".to_owned(),
        ));
    };
    if info.next_step(None) != NextStep::Refund {
        return Err(not_refundable(refusal(&info)));
    }
    let mut abort_transaction = None;
    if service.state == ConditionState::Unfulfilled {
        let request = TransactionRequest::default()
            .with_to(service.contract)
            .with_input(
                Condition::abortTimedOutCall {
                    conditionId: service.id,
                }
                .abi_encode(),
            );
        let receipt = sender
            .send("abort the timed-out service condition", request, progress)
            .await?;
        abort_transaction = Some(receipt.transaction_hash);
    }
    let call = PaymentCondition::refundCall {
        agreementId: id,
        did: info.did,
        payer: info.consumer,
        service: service.contract,
        payment: info.terms.payment(),
    };
    let request = TransactionRequest::default()
        .with_to(payment.contract)
        .with_input(call.abi_encode());
    let receipt = sender.send("refund", request, progress).await?;
    Ok(Refunded {
        agreement: id,
        payer: info.consumer,
        token: info.terms.token,
        amount: info.terms.total,
        abort_transaction,
        transaction: receipt.transaction_hash,
    })
}

fn refusal(info: &AgreementInfo) -> String {
    match info.next_step(None) {
        NextStep::Finished { outcome } => outcome,
        NextStep::Wait { who, deadline } => format!(
            "waiting for {who} until {} (unix time {deadline})",
            crate::deploy::format_utc(deadline)
        ),
        NextStep::Pay { deadline } | NextStep::Serve { deadline } => format!(
            "the agreement runs until {} (unix time {deadline})",
            crate::deploy::format_utc(deadline)
        ),
        NextStep::Release => {
            "the service was delivered: the payment goes to the provider".to_owned()
        }
        NextStep::Refund => "it is refundable".to_owned(),
    }
}

/// A withdrawal made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Withdrawn {
    /// What was withdrawn: `credit` or `fees`.
    pub kind: &'static str,
    /// The token (zero address: ETH).
    pub token: Address,
    /// Where it went.
    pub to: Address,
    /// How much.
    pub amount: U256,
    /// The transaction.
    pub transaction: B256,
}

/// Withdraws the sender's credit of `token` to `to`.
///
/// # Errors
///
/// [`PaymentError::NothingToWithdraw`] or [`PaymentError::ZeroRecipient`] (nothing sent), or see
/// [`PaymentError`].
pub async fn withdraw(
    suite: &Suite,
    sender: &Sender,
    token: Address,
    to: Address,
    progress: &dyn Progress,
) -> Result<Withdrawn, PaymentError> {
    if to.is_zero() {
        return Err(PaymentError::ZeroRecipient);
    }
    let payment = PaymentCondition::new(suite.addresses.payment, suite.provider());
    let amount = payment.credits(token, sender.address()).call().await?;
    if amount.is_zero() {
        return Err(PaymentError::NothingToWithdraw {
            account: sender.address(),
            token,
        });
    }
    let request = TransactionRequest::default()
        .with_to(suite.addresses.payment)
        .with_input(PaymentCondition::withdrawCall { token, to }.abi_encode());
    let receipt = sender.send("withdraw credit", request, progress).await?;
    Ok(Withdrawn {
        kind: "credit",
        token,
        to,
        amount,
        transaction: receipt.transaction_hash,
    })
}

/// Withdraws the network fees of `token` accrued so far to `to`; the sender must be the fee
/// receiver.
///
/// # Errors
///
/// [`PaymentError::NotFeeReceiver`], [`PaymentError::NothingToWithdraw`] or
/// [`PaymentError::ZeroRecipient`] (nothing sent), or see [`PaymentError`].
pub async fn withdraw_fees(
    suite: &Suite,
    sender: &Sender,
    token: Address,
    to: Address,
    progress: &dyn Progress,
) -> Result<Withdrawn, PaymentError> {
    if to.is_zero() {
        return Err(PaymentError::ZeroRecipient);
    }
    let payment = PaymentCondition::new(suite.addresses.payment, suite.provider());
    let receiver = payment.networkFee().call().await?.receiver;
    if receiver != sender.address() {
        return Err(PaymentError::NotFeeReceiver {
            account: sender.address(),
            receiver,
        });
    }
    let amount = payment.accruedFees(token).call().await?;
    if amount.is_zero() {
        return Err(PaymentError::NothingToWithdraw {
            account: sender.address(),
            token,
        });
    }
    let request = TransactionRequest::default()
        .with_to(suite.addresses.payment)
        .with_input(PaymentCondition::withdrawFeesCall { token, to }.abi_encode());
    let receipt = sender.send("withdraw fees", request, progress).await?;
    Ok(Withdrawn {
        kind: "fees",
        token,
        to,
        amount,
        transaction: receipt.transaction_hash,
    })
}
