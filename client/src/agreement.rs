//! An agreement read back from the chain: its conditions, their states and deadlines, its payment
//! terms, and what a given party can do next.
//!
//! The store keeps no agreement record, only conditions; an agreement's condition ids and terms
//! are in the events of the transaction that created it (`AgreementCreated` from the store,
//! `AgreementTerms` from the template), found by the agreement id, an indexed topic.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use insitu_bindings::{AgreementStore, ServiceTemplate, offers::Payment};
use serde::Serialize;

use crate::{governance::LOG_CHUNK, suite::Suite};

/// Why an agreement could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    /// No `AgreementCreated` with this id since the deployment.
    #[error("no agreement {0} was created on this suite")]
    NotFound(B256),
    /// The agreement was not created by one of the suite's service templates.
    #[error("agreement {id} was created by template {template}, not by a template of this suite")]
    UnknownTemplate {
        /// The agreement.
        id: B256,
        /// Its template.
        template: Address,
    },
    /// A read failed.
    #[error("reading the chain: {0}")]
    Call(#[from] alloy::contract::Error),
    /// The node could not be read.
    #[error("RPC error: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
}

/// The state of a condition in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionState {
    /// Does not exist.
    Uninitialized,
    /// Waiting to be fulfilled.
    Unfulfilled,
    /// Fulfilled (for a payment: paid into escrow).
    Fulfilled,
    /// Aborted (time out passed unfulfilled).
    Aborted,
    /// A payment paid out to its receivers.
    Released,
    /// A payment returned to its payer.
    Refunded,
}

impl ConditionState {
    /// From the store's `ConditionState` value.
    pub fn from_raw(value: u8) -> Self {
        match value {
            1 => Self::Unfulfilled,
            2 => Self::Fulfilled,
            3 => Self::Aborted,
            4 => Self::Released,
            5 => Self::Refunded,
            _ => Self::Uninitialized,
        }
    }
}

/// One condition of an agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionInfo {
    /// The condition's id.
    pub id: B256,
    /// Its contract.
    pub contract: Address,
    /// The contract's name in the suite, when it is one.
    pub name: Option<String>,
    /// Its state.
    pub state: ConditionState,
    /// Unix time before which it cannot be fulfilled (0: none).
    pub time_lock: u64,
    /// Unix time from which it can no longer be fulfilled (0: never).
    pub time_out: u64,
    /// Whether the time out has passed (at the latest block).
    pub timed_out: bool,
}

/// The terms the provider's offer set, from the template's `AgreementTerms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Terms {
    /// The provider whose offer was taken.
    pub provider: Address,
    /// The payment token (zero address: ETH).
    pub token: Address,
    /// Who is paid on release.
    pub receivers: Vec<Address>,
    /// How much each is paid.
    pub amounts: Vec<U256>,
    /// The network fee.
    pub fee: U256,
    /// The whole payment (amounts and fee).
    pub total: U256,
    /// Seconds the provider has to serve, from creation.
    pub service_timeout: u32,
    /// The metadata checksum the offer named.
    pub checksum: B256,
}

impl Terms {
    /// The payment struct the payment condition takes.
    pub fn payment(&self) -> Payment {
        Payment {
            token: self.token,
            receivers: self.receivers.clone(),
            amounts: self.amounts.clone(),
            fee: self.fee,
        }
    }
}

/// What a party can do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum NextStep {
    /// The consumer has to pay into escrow before `deadline` (a two-step purchase).
    Pay {
        /// Unix time the payment window closes.
        deadline: u64,
    },
    /// Wait for another party (`who`) until `deadline`.
    Wait {
        /// Whom for.
        who: String,
        /// Unix time until which they may act (0: no deadline).
        deadline: u64,
    },
    /// The provider has to serve before `deadline`.
    Serve {
        /// Unix time the service condition times out.
        deadline: u64,
    },
    /// The payment can be released to the provider (the provider's keeper does it).
    Release,
    /// The payment can be refunded to the consumer (anyone may: `insitu refund`).
    Refund,
    /// Nothing is left to do.
    Finished {
        /// How it ended.
        outcome: String,
    },
}

/// An agreement as the chain records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgreementInfo {
    /// The agreement's id.
    pub id: B256,
    /// The asset.
    pub did: B256,
    /// The consumer (the payer).
    pub consumer: Address,
    /// The template that created it.
    pub template: Address,
    /// The template's name in the suite.
    pub template_name: Option<String>,
    /// Block of its creation.
    pub created_block: u64,
    /// Unix time of its creation.
    pub created_at: u64,
    /// The payment terms.
    pub terms: Terms,
    /// Its conditions, in the template's order.
    pub conditions: Vec<ConditionInfo>,
    /// Index in `conditions` of the payment.
    pub payment: Option<usize>,
    /// Index in `conditions` of the service (access or compute).
    pub service: Option<usize>,
    /// Unix time of the latest block, which the `timed_out` flags are relative to.
    pub now: u64,
}

impl AgreementInfo {
    /// The payment condition.
    pub fn payment_condition(&self) -> Option<&ConditionInfo> {
        self.payment.map(|index| &self.conditions[index])
    }

    /// The service condition.
    pub fn service_condition(&self) -> Option<&ConditionInfo> {
        self.service.map(|index| &self.conditions[index])
    }

    /// What `party` can do next (the consumer, the provider, or anyone else).
    pub fn next_step(&self, party: Option<Address>) -> NextStep {
        let is_consumer = party == Some(self.consumer);
        let is_provider = party == Some(self.terms.provider);
        let (Some(payment), Some(service)) = (self.payment_condition(), self.service_condition())
        else {
            return NextStep::Finished {
                outcome: "the agreement has no payment or service condition".to_owned(),
            };
        };
        match (payment.state, service.state) {
            (ConditionState::Released, _) => NextStep::Finished {
                outcome: "served and paid: the payment was released to the provider".to_owned(),
            },
            (ConditionState::Refunded, _) => NextStep::Finished {
                outcome: "not served: the payment was refunded to the consumer".to_owned(),
            },
            (ConditionState::Aborted, _) => NextStep::Finished {
                outcome: "never paid: the payment window closed".to_owned(),
            },
            (ConditionState::Unfulfilled, _) if payment.timed_out => NextStep::Finished {
                outcome: "never paid: the payment window closed".to_owned(),
            },
            (ConditionState::Unfulfilled, _) if is_consumer => NextStep::Pay {
                deadline: payment.time_out,
            },
            (ConditionState::Unfulfilled, _) => NextStep::Wait {
                who: "the consumer to pay".to_owned(),
                deadline: payment.time_out,
            },
            (ConditionState::Fulfilled, ConditionState::Fulfilled) => NextStep::Release,
            (
                ConditionState::Fulfilled,
                ConditionState::Aborted | ConditionState::Uninitialized,
            ) => NextStep::Refund,
            (ConditionState::Fulfilled, ConditionState::Unfulfilled) if service.timed_out => {
                NextStep::Refund
            }
            (ConditionState::Fulfilled, ConditionState::Unfulfilled) if is_provider => {
                NextStep::Serve {
                    deadline: service.time_out,
                }
            }
            (ConditionState::Fulfilled, _) => NextStep::Wait {
                who: "the provider to serve".to_owned(),
                deadline: service.time_out,
            },
            (ConditionState::Uninitialized, _) => NextStep::Finished {
                outcome: "the payment condition does not exist".to_owned(),
            },
        }
    }
}

/// Reads agreement `id`, looking for its creation from the deployment's block on (or from
/// `from_block` when given).
///
/// # Errors
///
/// See [`AgreementError`].
pub async fn show(
    suite: &Suite,
    id: B256,
    from_block: Option<u64>,
) -> Result<AgreementInfo, AgreementError> {
    let provider = suite.provider();
    let store_address = suite.addresses.agreement_store;
    let latest = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .ok_or(AgreementError::NotFound(id))?;
    let (latest_number, now) = (latest.header.number, latest.header.timestamp);

    let mut from = from_block.unwrap_or(suite.deployment.block);
    let created = loop {
        if from > latest_number {
            return Err(AgreementError::NotFound(id));
        }
        let to = (from + LOG_CHUNK - 1).min(latest_number);
        let filter = Filter::new()
            .address(store_address)
            .event_signature(AgreementStore::AgreementCreated::SIGNATURE_HASH)
            .topic1(id)
            .from_block(from)
            .to_block(to);
        if let Some(log) = provider.get_logs(&filter).await?.into_iter().next() {
            break log;
        }
        from = to + 1;
    };
    let block = created.block_number.unwrap_or_default();
    let event = created
        .log_decode::<AgreementStore::AgreementCreated>()
        .map_err(|_| AgreementError::NotFound(id))?
        .inner
        .data;
    let template = event.template;
    if template != suite.addresses.access_template && template != suite.addresses.compute_template {
        return Err(AgreementError::UnknownTemplate { id, template });
    }
    let terms_filter = Filter::new()
        .address(template)
        .event_signature(ServiceTemplate::AgreementTerms::SIGNATURE_HASH)
        .topic1(id)
        .from_block(block)
        .to_block(block);
    let terms_log = provider
        .get_logs(&terms_filter)
        .await?
        .into_iter()
        .next()
        .ok_or(AgreementError::NotFound(id))?;
    let terms = terms_log
        .log_decode::<ServiceTemplate::AgreementTerms>()
        .map_err(|_| AgreementError::NotFound(id))?
        .inner
        .data;
    let created_at = match created.block_timestamp {
        Some(timestamp) => timestamp,
        None => provider
            .get_block_by_number(BlockNumberOrTag::Number(block))
            .await?
            .map(|block| block.header.timestamp)
            .unwrap_or_default(),
    };

    let store = AgreementStore::new(store_address, provider);
    let mut conditions = Vec::with_capacity(event.conditionIds.len());
    let (mut payment, mut service) = (None, None);
    for (index, condition_id) in event.conditionIds.iter().enumerate() {
        let condition = store.getCondition(*condition_id).call().await?;
        let time_out = condition.timeOut.to::<u64>();
        let contract = condition.conditionContract;
        if contract == suite.addresses.payment {
            payment = Some(index);
        } else if contract == suite.addresses.access
            || contract == suite.addresses.compute_execution
        {
            service = Some(index);
        }
        conditions.push(ConditionInfo {
            id: *condition_id,
            contract,
            name: suite.name_of(contract).map(str::to_owned),
            state: ConditionState::from_raw(condition.state),
            time_lock: condition.timeLock.to::<u64>(),
            time_out,
            timed_out: time_out != 0 && now >= time_out,
        });
    }
    let total = terms
        .amounts
        .iter()
        .fold(terms.fee, |sum, amount| sum + amount);
    Ok(AgreementInfo {
        id,
        did: event.did,
        consumer: event.consumer,
        template,
        template_name: suite.name_of(template).map(str::to_owned),
        created_block: block,
        created_at,
        terms: Terms {
            provider: terms.provider,
            token: terms.token,
            receivers: terms.receivers,
            amounts: terms.amounts,
            fee: terms.fee,
            total,
            service_timeout: terms.serviceTimeout,
            checksum: terms.checksum,
        },
        conditions,
        payment,
        service,
        now,
    })
}
