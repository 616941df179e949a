//! Settlement actions: one per agreement, the intent to fulfil its service and release its
//! payment, and every transaction attempt made for it.
//!
//! An action's row is written before anything is signed, each signed attempt (hash, nonce, fees,
//! raw bytes) before it is broadcast, and the outcome once its receipt is buried under the
//! confirmations. Whatever point a crash interrupts, the rows say what may be on the chain, and
//! the executor finds out from the chain what happened.

use alloy::primitives::{B256, Bytes};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, b256};

/// Where a settlement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Wanted; nothing signed yet.
    Pending,
    /// A transaction is signed and recorded, perhaps not broadcast.
    Signed,
    /// A transaction is broadcast; waiting for its receipt and confirmations.
    Sent,
    /// Our transaction is mined and buried under the confirmations.
    Confirmed,
    /// Nothing for us to send: the chain already shows it settled.
    Done,
    /// It cannot be done (unpaid, timed out, refunded, would revert); the reason is recorded.
    Failed,
    /// The operator gave it up, with a reason: the executor leaves it alone and requests for it
    /// are refused, until the operator asks for a retry.
    Abandoned,
}

impl ActionState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signed => "signed",
            Self::Sent => "sent",
            Self::Confirmed => "confirmed",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }

    /// The state named `text` (as stored).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for an unknown name.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "pending" => Self::Pending,
            "signed" => Self::Signed,
            "sent" => Self::Sent,
            "confirmed" => Self::Confirmed,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "abandoned" => Self::Abandoned,
            other => return Err(StoreError::Corrupt(format!("action state `{other}`"))),
        })
    }

    /// Whether the action still holds a nonce of the keeper's account.
    pub fn in_flight(self) -> bool {
        matches!(self, Self::Signed | Self::Sent)
    }
}

/// The transaction a settlement sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementCall {
    /// The service condition's `fulfilAndRelease`: grant and release in one transaction.
    FulfilAndRelease,
    /// The payment condition's `release` (the service is already fulfilled).
    Release,
    /// The asset registry's `registerResult`: a compute job's result becomes the consumer's asset
    /// (a step before the compute condition's `fulfilAndRelease`).
    RegisterResult,
    /// The asset registry's `recordUse`: the input of a compute job records its use (a step
    /// after the registration).
    RecordUse,
}

impl SettlementCall {
    fn as_str(self) -> &'static str {
        match self {
            Self::FulfilAndRelease => "fulfil_and_release",
            Self::Release => "release",
            Self::RegisterResult => "register_result",
            Self::RecordUse => "record_use",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "fulfil_and_release" => Self::FulfilAndRelease,
            "release" => Self::Release,
            "register_result" => Self::RegisterResult,
            "record_use" => Self::RecordUse,
            other => return Err(StoreError::Corrupt(format!("settlement call `{other}`"))),
        })
    }

    /// Whether a settlement goes on after this call is confirmed (a step of a compute
    /// settlement), rather than ending with it.
    pub fn is_step(self) -> bool {
        matches!(self, Self::RegisterResult | Self::RecordUse)
    }
}

/// A settlement action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The agreement (the action's idempotency key: one settlement per agreement).
    pub agreement_id: B256,
    /// Where it stands.
    pub state: ActionState,
    /// The transaction chosen, once signed.
    pub call: Option<SettlementCall>,
    /// The nonce it holds, once signed.
    pub nonce: Option<u64>,
    /// The latest attempt's hash, or the confirmed transaction.
    pub tx_hash: Option<B256>,
    /// The block of the confirmed transaction.
    pub block: Option<u64>,
    /// What happened, in words (the reason of a failure, the decoded revert, ...).
    pub outcome: Option<String>,
    /// Unix time it was wanted.
    pub created_at: u64,
    /// Unix time of its last change.
    pub updated_at: u64,
}

/// One signed transaction of an action (a fee bump is another attempt with the same nonce).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// Its hash.
    pub tx_hash: B256,
    /// Its nonce.
    pub nonce: u64,
    /// EIP-1559 fee cap.
    pub max_fee_per_gas: u128,
    /// EIP-1559 tip.
    pub max_priority_fee_per_gas: u128,
    /// The signed transaction.
    #[serde(skip)]
    pub raw: Bytes,
    /// Unix time it was signed.
    pub sent_at: u64,
}

const ACTION_COLUMNS: &str = "SELECT agreement_id, state, call, nonce, tx_hash, block, outcome, \
     created_at, updated_at FROM actions";

type RawAction = (
    Vec<u8>,
    String,
    Option<String>,
    Option<u64>,
    Option<Vec<u8>>,
    Option<u64>,
    Option<String>,
    u64,
    u64,
);

fn raw_action(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawAction> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn decode_action(raw: RawAction) -> Result<Action, StoreError> {
    let (id, state, call, nonce, tx_hash, block, outcome, created_at, updated_at) = raw;
    Ok(Action {
        agreement_id: b256(&id)?,
        state: ActionState::parse(&state)?,
        call: call.as_deref().map(SettlementCall::parse).transpose()?,
        nonce,
        tx_hash: tx_hash.as_deref().map(b256).transpose()?,
        block,
        outcome,
        created_at,
        updated_at,
    })
}

impl Store {
    /// Records the intent to settle agreement `id` at unix time `now`. Returns false when an
    /// action for it already exists (whatever its state): an agreement is settled once.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn intend(&mut self, id: B256, now: u64) -> Result<bool, StoreError> {
        let inserted = self.connection.execute(
            "INSERT OR IGNORE INTO actions (agreement_id, state, created_at, updated_at) \
             VALUES (?1, 'pending', ?2, ?2)",
            params![id.as_slice(), now],
        )?;
        Ok(inserted == 1)
    }

    /// The action of agreement `id`.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn action(&self, id: B256) -> Result<Option<Action>, StoreError> {
        self.connection
            .query_row(
                &format!("{ACTION_COLUMNS} WHERE agreement_id = ?1"),
                [id.as_slice()],
                raw_action,
            )
            .optional()?
            .map(decode_action)
            .transpose()
    }

    /// The actions in `state`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn actions(&self, state: ActionState) -> Result<Vec<Action>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "{ACTION_COLUMNS} WHERE state = ?1 ORDER BY created_at, agreement_id"
        ))?;
        let rows = statement.query_map([state.as_str()], raw_action)?;
        rows.map(|row| decode_action(row?)).collect()
    }

    /// The confirmed actions whose transaction's block is `from_block` or later (those a reorg
    /// could still undo), oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn confirmed_since(&self, from_block: u64) -> Result<Vec<Action>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "{ACTION_COLUMNS} WHERE state = 'confirmed' AND block >= ?1 \
             ORDER BY created_at, agreement_id"
        ))?;
        let rows = statement.query_map([from_block], raw_action)?;
        rows.map(|row| decode_action(row?)).collect()
    }

    /// The nonces held by signed or sent actions.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn nonces_in_flight(&self) -> Result<Vec<u64>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT nonce FROM actions WHERE state IN ('signed', 'sent') AND nonce IS NOT NULL \
             ORDER BY nonce",
        )?;
        let rows = statement.query_map([], |row| row.get::<_, u64>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the first signed attempt of each of these pending actions, in one transaction
    /// (each action then holds its attempt's nonce).
    ///
    /// # Errors
    ///
    /// [`StoreError`]; then none is recorded.
    pub fn record_signed(
        &mut self,
        signed: &[(B256, SettlementCall, Attempt)],
    ) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        for (id, call, attempt) in signed {
            insert_attempt(&tx, *id, attempt)?;
            tx.execute(
                "UPDATE actions SET state = 'signed', call = ?2, nonce = ?3, tx_hash = ?4, \
                 outcome = NULL, updated_at = ?5 WHERE agreement_id = ?1",
                params![
                    id.as_slice(),
                    call.as_str(),
                    attempt.nonce,
                    attempt.tx_hash.as_slice(),
                    attempt.sent_at
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Moves these signed actions to `Sent` (their transactions are broadcast), in one
    /// transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; then none is moved.
    pub fn mark_sent(&mut self, ids: &[B256], now: u64) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE actions SET state = 'sent', updated_at = ?2 WHERE agreement_id = ?1",
                params![id.as_slice(), now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a replacement attempt (same nonce, higher fees) of a sent action.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn record_attempt(&mut self, id: B256, attempt: &Attempt) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        insert_attempt(&tx, id, attempt)?;
        tx.execute(
            "UPDATE actions SET tx_hash = ?2, updated_at = ?3 WHERE agreement_id = ?1",
            params![id.as_slice(), attempt.tx_hash.as_slice(), attempt.sent_at],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every attempt of agreement `id`'s action, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn attempts(&self, id: B256) -> Result<Vec<Attempt>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT tx_hash, nonce, max_fee_per_gas, max_priority_fee_per_gas, raw, sent_at \
             FROM attempts WHERE agreement_id = ?1 ORDER BY sent_at DESC, rowid DESC",
        )?;
        let rows = statement.query_map([id.as_slice()], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, u64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Vec<u8>>(4)?,
                row.get::<_, u64>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (hash, nonce, max_fee, priority, raw, sent_at) = row?;
            let number = |text: &str| {
                text.parse::<u128>()
                    .map_err(|_| StoreError::Corrupt(format!("fee `{text}`")))
            };
            Ok(Attempt {
                tx_hash: b256(&hash)?,
                nonce,
                max_fee_per_gas: number(&max_fee)?,
                max_priority_fee_per_gas: number(&priority)?,
                raw: raw.into(),
                sent_at,
            })
        })
        .collect()
    }

    /// Moves an action to `state` (`Sent`, or back to `Pending` to be decided again, which
    /// releases its nonce), with an optional outcome.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn set_action_state(
        &mut self,
        id: B256,
        state: ActionState,
        outcome: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError> {
        let release_nonce = state == ActionState::Pending;
        self.connection.execute(
            "UPDATE actions SET state = ?2, outcome = COALESCE(?3, outcome), updated_at = ?4, \
             nonce = CASE WHEN ?5 THEN NULL ELSE nonce END, \
             call = CASE WHEN ?5 THEN NULL ELSE call END \
             WHERE agreement_id = ?1",
            params![id.as_slice(), state.as_str(), outcome, now, release_nonce],
        )?;
        Ok(())
    }

    /// A step of action `id` is confirmed: the action goes back to pending to decide its next
    /// call from the chain, its nonce released and the step's attempts dropped (so that only the
    /// next step's are followed; the audit log keeps them all).
    ///
    /// # Errors
    ///
    /// [`StoreError`]; then nothing changes.
    pub fn next_step(&mut self, id: B256, outcome: &str, now: u64) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        tx.execute(
            "DELETE FROM attempts WHERE agreement_id = ?1",
            [id.as_slice()],
        )?;
        tx.execute(
            "UPDATE actions SET state = 'pending', nonce = NULL, call = NULL, outcome = ?2, \
             updated_at = ?3 WHERE agreement_id = ?1",
            params![id.as_slice(), outcome, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records an action's end: `Confirmed` (with our transaction and its block), `Done` (the
    /// chain shows it settled without us) or `Failed` (with the reason).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn finish_action(
        &mut self,
        id: B256,
        state: ActionState,
        transaction: Option<(B256, u64)>,
        outcome: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE actions SET state = ?2, tx_hash = COALESCE(?3, tx_hash), block = ?4, \
             outcome = ?5, updated_at = ?6 WHERE agreement_id = ?1",
            params![
                id.as_slice(),
                state.as_str(),
                transaction.map(|(hash, _)| hash.to_vec()),
                transaction.map(|(_, block)| block),
                outcome,
                now
            ],
        )?;
        Ok(())
    }
}

fn insert_attempt(
    tx: &rusqlite::Transaction<'_>,
    id: B256,
    attempt: &Attempt,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO attempts (tx_hash, agreement_id, nonce, max_fee_per_gas, \
         max_priority_fee_per_gas, raw, sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            attempt.tx_hash.as_slice(),
            id.as_slice(),
            attempt.nonce,
            attempt.max_fee_per_gas.to_string(),
            attempt.max_priority_fee_per_gas.to_string(),
            attempt.raw.as_ref(),
            attempt.sent_at
        ],
    )?;
    Ok(())
}
