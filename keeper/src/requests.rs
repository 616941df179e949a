//! Checking a consumer's signed request (see `insitu_bindings::requests`) against what the
//! watcher recorded, before anything is served or sent.
//!
//! Every refusal is a [`RequestError`] with a stable code for the API's error catalog; a refused
//! request changes nothing (its nonce is only spent once every other check has passed).

use alloy::primitives::{Address, B256};
use insitu_bindings::{
    deployment::SuiteAddresses,
    requests::{self, ServiceRequest},
};

use crate::store::{Agreement, AgreementState, Store, StoreError};

/// Furthest a request's deadline may be from now, in seconds: a signed request is a bearer
/// credential until then, so it must be short-lived.
pub const MAX_DEADLINE_AHEAD: u64 = 600;

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The command is not one this endpoint serves.
    #[error("command `{got}` is not `{expected}`")]
    WrongCommand {
        /// The command asked.
        got: String,
        /// The command of the endpoint.
        expected: &'static str,
    },
    /// The deadline has passed.
    #[error("the request expired at {deadline} (now {now})")]
    Expired {
        /// The request's deadline.
        deadline: u64,
        /// The keeper's time.
        now: u64,
    },
    /// The deadline is too far ahead.
    #[error("the deadline {deadline} is more than {MAX_DEADLINE_AHEAD} s ahead of now ({now})")]
    DeadlineTooFar {
        /// The request's deadline.
        deadline: u64,
        /// The keeper's time.
        now: u64,
    },
    /// No agreement with this id was made on an offer of this provider (or it is not buried
    /// under the confirmations yet).
    #[error("no confirmed agreement {0} on an offer of this provider")]
    UnknownAgreement(B256),
    /// The agreement was made by another template than the command needs.
    #[error("agreement {id} was made by template {template}, not the one for `{command}`")]
    WrongTemplate {
        /// The agreement.
        id: B256,
        /// Its template.
        template: Address,
        /// The command.
        command: String,
    },
    /// The request names another asset than the agreement's.
    #[error("agreement {id} is about asset {agreed}, not {asked}")]
    WrongAsset {
        /// The agreement.
        id: B256,
        /// Its asset.
        agreed: B256,
        /// The asset asked for.
        asked: B256,
    },
    /// The request names another consumer than the agreement's.
    #[error("agreement {id} belongs to consumer {agreed}, not {asked}")]
    WrongConsumer {
        /// The agreement.
        id: B256,
        /// Its consumer.
        agreed: Address,
        /// The consumer named.
        asked: Address,
    },
    /// The signature is not the named consumer's over this request.
    #[error("the signature is not {consumer}'s over this request")]
    Forged {
        /// The consumer named in the request.
        consumer: Address,
    },
    /// The payment is not in escrow.
    #[error("agreement {0} is not paid")]
    Unpaid(B256),
    /// The agreement ended without service (timed out, refunded).
    #[error("agreement {0} can no longer be served: its service timed out or it was refunded")]
    Ended(B256),
    /// The nonce was used before.
    #[error("nonce {nonce} of {consumer} was already used")]
    Replayed {
        /// The consumer.
        consumer: Address,
        /// The nonce.
        nonce: alloy::primitives::U256,
    },
    /// The store failed (not the request's fault).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RequestError {
    /// The stable code of the API's error catalog.
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongCommand { .. } => "wrong_command",
            Self::Expired { .. } => "expired",
            Self::DeadlineTooFar { .. } => "deadline_too_far",
            Self::UnknownAgreement(_) => "unknown_agreement",
            Self::WrongTemplate { .. } => "wrong_template",
            Self::WrongAsset { .. } => "wrong_asset",
            Self::WrongConsumer { .. } => "wrong_consumer",
            Self::Forged { .. } => "forged",
            Self::Unpaid(_) => "unpaid",
            Self::Ended(_) => "ended",
            Self::Replayed { .. } => "replayed",
            Self::Store(_) => "internal",
        }
    }
}

/// Checks `request`, signed with `signature`, for `command` at unix time `now`: command,
/// deadline, the agreement (this provider's, confirmed, made by the command's template, for this
/// asset and consumer), the consumer's signature in the domain of the agreement's service
/// condition on `chain_id`, the payment, and last the nonce, which it then spends. Returns the
/// agreement.
///
/// # Errors
///
/// The first failing check, see [`RequestError`].
pub fn verify(
    store: &mut Store,
    suite: &SuiteAddresses,
    chain_id: u64,
    command: &'static str,
    request: &ServiceRequest,
    signature: &[u8],
    now: u64,
) -> Result<Agreement, RequestError> {
    if request.command != command {
        return Err(RequestError::WrongCommand {
            got: request.command.clone(),
            expected: command,
        });
    }
    let claim = Claim {
        agreement_id: request.agreementId,
        did: request.did,
        consumer: request.consumer,
        nonce: request.nonce,
        deadline: request.deadline,
    };
    check(store, suite, chain_id, command, &claim, now, |domain| {
        requests::recover(request, domain, signature)
    })
}

/// Checks a consumer's signed compute order as [`verify`] checks a request (its command is
/// `compute`), the signature being over the whole [`ComputeJob`](requests::ComputeJob).
///
/// # Errors
///
/// The first failing check, see [`RequestError`].
pub fn verify_compute(
    store: &mut Store,
    suite: &SuiteAddresses,
    chain_id: u64,
    job: &requests::ComputeJob,
    signature: &[u8],
    now: u64,
) -> Result<Agreement, RequestError> {
    let claim = Claim {
        agreement_id: job.agreementId,
        did: job.did,
        consumer: job.consumer,
        nonce: job.nonce,
        deadline: job.deadline,
    };
    check(
        store,
        suite,
        chain_id,
        requests::commands::COMPUTE,
        &claim,
        now,
        |domain| requests::recover_compute(job, domain, signature),
    )
}

/// What every signed message claims.
struct Claim {
    agreement_id: B256,
    did: B256,
    consumer: Address,
    nonce: alloy::primitives::U256,
    deadline: u64,
}

/// Whether `command` only reads about a job (allowed after the agreement ended, to see why).
fn informational(command: &str) -> bool {
    matches!(
        command,
        requests::commands::STATUS | requests::commands::LOGS
    )
}

fn check(
    store: &mut Store,
    suite: &SuiteAddresses,
    chain_id: u64,
    command: &'static str,
    request: &Claim,
    now: u64,
    signer: impl FnOnce(&alloy::sol_types::Eip712Domain) -> Option<Address>,
) -> Result<Agreement, RequestError> {
    if request.deadline < now {
        return Err(RequestError::Expired {
            deadline: request.deadline,
            now,
        });
    }
    if request.deadline > now + MAX_DEADLINE_AHEAD {
        return Err(RequestError::DeadlineTooFar {
            deadline: request.deadline,
            now,
        });
    }
    let id = request.agreement_id;
    let agreement = store
        .agreement(id)?
        .ok_or(RequestError::UnknownAgreement(id))?;
    let template = match command {
        requests::commands::ACCESS => suite.access_template,
        _ => suite.compute_template,
    };
    if agreement.template != template {
        return Err(RequestError::WrongTemplate {
            id,
            template: agreement.template,
            command: command.to_owned(),
        });
    }
    if agreement.did != request.did {
        return Err(RequestError::WrongAsset {
            id,
            agreed: agreement.did,
            asked: request.did,
        });
    }
    if agreement.consumer != request.consumer {
        return Err(RequestError::WrongConsumer {
            id,
            agreed: agreement.consumer,
            asked: request.consumer,
        });
    }
    let domain = requests::domain(chain_id, agreement.service_contract);
    if signer(&domain) != Some(request.consumer) {
        return Err(RequestError::Forged {
            consumer: request.consumer,
        });
    }
    match agreement.state {
        AgreementState::Paid | AgreementState::Served | AgreementState::Released => {}
        AgreementState::Created | AgreementState::PaymentAborted => {
            return Err(RequestError::Unpaid(id));
        }
        AgreementState::ServiceAborted | AgreementState::Refunded if !informational(command) => {
            return Err(RequestError::Ended(id));
        }
        AgreementState::ServiceAborted | AgreementState::Refunded => {}
    }
    if !store.use_request_nonce(request.consumer, request.nonce, request.deadline, now)? {
        return Err(RequestError::Replayed {
            consumer: request.consumer,
            nonce: request.nonce,
        });
    }
    Ok(agreement)
}
