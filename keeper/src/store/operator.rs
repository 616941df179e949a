//! The operator's side of the store: the audit log (append-only, written by triggers with every
//! change to an agreement's events, action and transactions, and by the operator's requests as
//! they are applied) and the operator's requests themselves.
//!
//! An operator never changes a settlement directly: `insitu-keeper admin` writes a request, and
//! the process that owns the record applies it in its next round (the executor a retry or an
//! abandon, the watcher a re-index), checking it against the record's state at that moment. So an
//! operator's request cannot race a transaction the executor is signing.

use alloy::primitives::B256;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Action, ActionState, Agreement, AgreementState, Checkpoint, Store, StoreError, b256};

/// What an operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Decide a failed or abandoned settlement again.
    Retry,
    /// Give a settlement up: the executor leaves it alone, requests for it are refused.
    Abandon,
    /// Scan the chain again from a block (events missed by a faulty node are recorded).
    Reindex,
}

impl RequestKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Abandon => "abandon",
            Self::Reindex => "reindex",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "retry" => Self::Retry,
            "abandon" => Self::Abandon,
            "reindex" => Self::Reindex,
            other => return Err(StoreError::Corrupt(format!("request kind `{other}`"))),
        })
    }
}

/// An operator's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorRequest {
    /// Its number, in the order they were made.
    pub seq: u64,
    /// What it asks.
    pub kind: RequestKind,
    /// The agreement (retry, abandon).
    pub agreement_id: Option<B256>,
    /// The first block to scan again (re-index).
    pub from_block: Option<u64>,
    /// Why, in the operator's words.
    pub reason: String,
    /// Unix time it was made.
    pub requested_at: u64,
    /// Unix time it was applied (or refused), once it was.
    pub applied_at: Option<u64>,
    /// What came of it: `applied: ...` or `refused: ...`.
    pub result: Option<String>,
}

/// A line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its number (lines are only ever appended).
    pub seq: u64,
    /// The agreement, or none for a keeper-wide line (a re-index).
    pub agreement_id: Option<B256>,
    /// Unix time.
    pub at: u64,
    /// Who: `watcher`, `executor`, `keeper` or `operator`.
    pub actor: String,
    /// What happened.
    pub event: String,
    /// Details: block and transaction, fees, a reason.
    pub detail: Option<String>,
}

const REQUEST_COLUMNS: &str = "SELECT seq, kind, agreement_id, from_block, reason, requested_at, \
     applied_at, result FROM operator_requests";

type RawRequest = (
    u64,
    String,
    Option<Vec<u8>>,
    Option<u64>,
    String,
    u64,
    Option<u64>,
    Option<String>,
);

fn raw_request(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRequest> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn decode_request(raw: RawRequest) -> Result<OperatorRequest, StoreError> {
    let (seq, kind, agreement, from_block, reason, requested_at, applied_at, result) = raw;
    Ok(OperatorRequest {
        seq,
        kind: RequestKind::parse(&kind)?,
        agreement_id: agreement.as_deref().map(b256).transpose()?,
        from_block,
        reason,
        requested_at,
        applied_at,
        result,
    })
}

impl Store {
    /// Records an operator's request; returns its number. It is applied by the keeper's next
    /// round (see the module's documentation).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn request(
        &mut self,
        kind: RequestKind,
        agreement: Option<B256>,
        from_block: Option<u64>,
        reason: &str,
        now: u64,
    ) -> Result<u64, StoreError> {
        self.connection.execute(
            "INSERT INTO operator_requests (kind, agreement_id, from_block, reason, requested_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                kind.as_str(),
                agreement.map(|id| id.to_vec()),
                from_block,
                reason,
                now
            ],
        )?;
        Ok(self.connection.last_insert_rowid() as u64)
    }

    /// Request number `seq`.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn operator_request(&self, seq: u64) -> Result<Option<OperatorRequest>, StoreError> {
        self.connection
            .query_row(
                &format!("{REQUEST_COLUMNS} WHERE seq = ?1"),
                [seq],
                raw_request,
            )
            .optional()?
            .map(decode_request)
            .transpose()
    }

    /// The requests of these kinds not applied yet, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn open_requests(&self, kinds: &[RequestKind]) -> Result<Vec<OperatorRequest>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "{REQUEST_COLUMNS} WHERE applied_at IS NULL ORDER BY seq"
        ))?;
        let rows = statement.query_map([], raw_request)?;
        let mut open = Vec::new();
        for row in rows {
            let request = decode_request(row?)?;
            if kinds.contains(&request.kind) {
                open.push(request);
            }
        }
        Ok(open)
    }

    /// The requests made about agreement `id`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn requests_for(&self, id: B256) -> Result<Vec<OperatorRequest>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "{REQUEST_COLUMNS} WHERE agreement_id = ?1 ORDER BY seq"
        ))?;
        let rows = statement.query_map([id.as_slice()], raw_request)?;
        rows.map(|row| decode_request(row?)).collect()
    }

    /// The newest `limit` agreements (by creation block), newest first, with their settlement:
    /// only those in agreement state `state`, and in settlement state `settlement` (the text
    /// `none` for agreements without one), when given.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn agreement_list(
        &self,
        state: Option<AgreementState>,
        settlement: Option<Option<ActionState>>,
        limit: u64,
    ) -> Result<Vec<(Agreement, Option<Action>)>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT agreements.id FROM agreements \
             LEFT JOIN actions ON actions.agreement_id = agreements.id \
             WHERE (?1 IS NULL OR agreements.state = ?1) \
               AND (?2 IS NULL OR COALESCE(actions.state, 'none') = ?2) \
             ORDER BY agreements.created_block DESC, agreements.id LIMIT ?3",
        )?;
        let settlement = settlement.map(|state| state.map_or("none", ActionState::as_str));
        let ids = statement
            .query_map(
                params![state.map(AgreementState::as_str), settlement, limit],
                |row| row.get::<_, Vec<u8>>(0),
            )?
            .map(|id| b256(&id?))
            .collect::<Result<Vec<_>, _>>()?;
        ids.into_iter()
            .filter_map(|id| match self.agreement(id) {
                Ok(Some(agreement)) => Some(self.action(id).map(|action| (agreement, action))),
                Ok(None) => None,
                Err(error) => Some(Err(error)),
            })
            .collect()
    }

    /// Agreement `id`'s audit log, oldest line first; without an id, the newest `limit` lines of
    /// the whole log, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn audit(&self, id: Option<B256>, limit: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT seq, agreement_id, at, actor, event, detail FROM ( \
               SELECT * FROM audit WHERE ?1 IS NULL OR agreement_id = ?1 \
               ORDER BY seq DESC LIMIT ?2 \
             ) ORDER BY seq",
        )?;
        let rows = statement.query_map(params![id.map(|id| id.to_vec()), limit], |row| {
            Ok((
                row.get::<_, u64>(0)?,
                row.get::<_, Option<Vec<u8>>>(1)?,
                row.get::<_, u64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Option<String>>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (seq, agreement, at, actor, event, detail) = row?;
            Ok(AuditEntry {
                seq,
                agreement_id: agreement.as_deref().map(b256).transpose()?,
                at,
                actor,
                event,
                detail,
            })
        })
        .collect()
    }

    /// Applies the open retry and abandon requests, oldest first, each in one transaction with
    /// the state it finds: a retry moves a failed or abandoned settlement back to pending (or
    /// wants one for a known agreement that has none); an abandon moves a pending or failed one
    /// (or an agreement without one) to abandoned. A settlement with a transaction in flight or
    /// already settled is left as it is, and the request refused with the reason. Returns the
    /// requests as applied.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the requests applied before the error stay applied.
    pub fn apply_settlement_requests(
        &mut self,
        now: u64,
    ) -> Result<Vec<OperatorRequest>, StoreError> {
        let mut applied = Vec::new();
        for request in self.open_requests(&[RequestKind::Retry, RequestKind::Abandon])? {
            let tx = self.connection.transaction()?;
            let result = match request.agreement_id {
                None => "refused: the request names no agreement".to_owned(),
                Some(id) => settle_request(&tx, &request, id, now)?,
            };
            finish_request(&tx, &request, &result, now)?;
            tx.commit()?;
            applied.push(OperatorRequest {
                applied_at: Some(now),
                result: Some(result),
                ..request
            });
        }
        Ok(applied)
    }

    /// Applies re-index request `request`: the scan cursor moves back to `restart` (the block
    /// before the first one to scan again, with its hash), or to nothing (scan again from the
    /// watcher's first block) when `None`. Recorded events stay; the scan records again only
    /// what is missing.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; nothing changes then.
    pub fn apply_reindex(
        &mut self,
        request: &OperatorRequest,
        restart: Option<Checkpoint>,
        result: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        match restart {
            Some(checkpoint) => {
                tx.execute(
                    "DELETE FROM checkpoints WHERE number >= ?1",
                    [checkpoint.number],
                )?;
                tx.execute(
                    "INSERT INTO checkpoints (number, hash) VALUES (?1, ?2)",
                    params![checkpoint.number, checkpoint.hash.as_slice()],
                )?;
            }
            None => {
                tx.execute("DELETE FROM checkpoints", [])?;
            }
        }
        finish_request(&tx, request, result, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Marks request `request` done with `result` without changing anything else (a re-index
    /// with nothing to scan again).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn close_request(
        &mut self,
        request: &OperatorRequest,
        result: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let tx = self.connection.transaction()?;
        finish_request(&tx, request, result, now)?;
        tx.commit()?;
        Ok(())
    }
}

/// Applies one retry or abandon for agreement `id`; returns the result.
fn settle_request(
    tx: &rusqlite::Transaction<'_>,
    request: &OperatorRequest,
    id: B256,
    now: u64,
) -> Result<String, StoreError> {
    let known: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM agreements WHERE id = ?1)",
        [id.as_slice()],
        |row| row.get(0),
    )?;
    let state = tx
        .query_row(
            "SELECT state FROM actions WHERE agreement_id = ?1",
            [id.as_slice()],
            |row| row.get::<_, String>(0),
        )
        .optional()?
        .map(|state| ActionState::parse(&state))
        .transpose()?;
    let note = format!(
        "{} by the operator: {}",
        request.kind.as_str(),
        request.reason
    );
    let target = match (request.kind, state) {
        (_, None) if !known => {
            return Ok("refused: no agreement of this keeper has this id".to_owned());
        }
        (RequestKind::Retry, None | Some(ActionState::Failed | ActionState::Abandoned)) => {
            Ok(ActionState::Pending)
        }
        (RequestKind::Abandon, None | Some(ActionState::Pending | ActionState::Failed)) => {
            Ok(ActionState::Abandoned)
        }
        (_, Some(state @ (ActionState::Signed | ActionState::Sent))) => Err(format!(
            "refused: the settlement is {} (a transaction is in flight and may still be \
             mined); ask again once it ends",
            state.as_str()
        )),
        (_, Some(state @ (ActionState::Confirmed | ActionState::Done))) => Err(format!(
            "refused: the settlement is {}: nothing is left to do",
            state.as_str()
        )),
        (_, Some(state)) => Err(format!(
            "refused: the settlement is already {}",
            state.as_str()
        )),
        (RequestKind::Reindex, _) => Err("refused: not a settlement request".to_owned()),
    };
    let result = match target {
        Ok(target) => format!("applied: the settlement is {}", target.as_str()),
        Err(ref refused) => refused.clone(),
    };
    // Written before the settlement moves, so the operator's line comes first in the log.
    operator_line(tx, Some(id), now, request, &result)?;
    let Ok(target) = target else {
        return Ok(result);
    };
    if state.is_none() {
        tx.execute(
            "INSERT INTO actions (agreement_id, state, outcome, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![id.as_slice(), target.as_str(), note, now],
        )?;
    } else {
        if target == ActionState::Pending {
            // The transactions of the earlier try are over (a failed one was mined and reverted,
            // or never signed): the executor follows only the new try's. The audit log keeps
            // every one of them.
            tx.execute(
                "DELETE FROM attempts WHERE agreement_id = ?1",
                [id.as_slice()],
            )?;
        }
        // A pending settlement holds no nonce; clear any from a failed attempt.
        tx.execute(
            "UPDATE actions SET state = ?2, outcome = ?3, updated_at = ?4, \
             nonce = CASE WHEN ?2 = 'pending' THEN NULL ELSE nonce END, \
             call = CASE WHEN ?2 = 'pending' THEN NULL ELSE call END \
             WHERE agreement_id = ?1",
            params![id.as_slice(), target.as_str(), note, now],
        )?;
    }
    Ok(result)
}

fn finish_request(
    tx: &rusqlite::Transaction<'_>,
    request: &OperatorRequest,
    result: &str,
    now: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE operator_requests SET applied_at = ?2, result = ?3 WHERE seq = ?1",
        params![request.seq, now, result],
    )?;
    if request.kind == RequestKind::Reindex {
        operator_line(tx, None, now, request, result)?;
    }
    Ok(())
}

/// The audit line of an operator's request: what was asked, why, and what came of it.
fn operator_line(
    tx: &rusqlite::Transaction<'_>,
    agreement: Option<B256>,
    now: u64,
    request: &OperatorRequest,
    result: &str,
) -> Result<(), StoreError> {
    let event = match request.kind {
        RequestKind::Reindex => format!(
            "re-index from block {} requested",
            request.from_block.unwrap_or_default()
        ),
        kind => format!("{} requested", kind.as_str()),
    };
    tx.execute(
        "INSERT INTO audit (agreement_id, at, actor, event, detail) \
         VALUES (?1, ?2, 'operator', ?3, ?4)",
        params![
            agreement.map(|id| id.to_vec()),
            now,
            event,
            format!("{}; {result}", request.reason)
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};

    use super::*;
    use crate::store::{Attempt, LogPosition, Observed, SettlementCall, Terms};

    fn agreement(byte: u8) -> Agreement {
        Agreement {
            id: B256::repeat_byte(byte),
            did: B256::repeat_byte(0xd1),
            consumer: Address::repeat_byte(3),
            template: Address::repeat_byte(4),
            service_contract: Address::repeat_byte(5),
            payment_condition: B256::repeat_byte(byte ^ 0x10),
            service_condition: B256::repeat_byte(byte ^ 0x20),
            terms: Terms {
                provider: Address::repeat_byte(2),
                token: Address::ZERO,
                receivers: vec![Address::repeat_byte(2)],
                amounts: vec![U256::from(1)],
                fee: U256::ZERO,
                service_timeout: 3_600,
                checksum: B256::ZERO,
            },
            created_block: 10,
            state: AgreementState::Created,
            state_block: 10,
        }
    }

    /// A store holding agreements 1 to 6.
    fn store() -> Store {
        let mut store = Store::in_memory().unwrap();
        let observed: Vec<Observed> = (1..=6)
            .map(|byte| Observed::Created {
                at: LogPosition {
                    block_number: 10,
                    block_hash: B256::repeat_byte(0xb0),
                    log_index: u64::from(byte),
                    tx_hash: B256::repeat_byte(0xe0 + byte),
                },
                agreement: Box::new(agreement(byte)),
            })
            .collect();
        store
            .apply(
                &observed,
                Checkpoint {
                    number: 20,
                    hash: B256::repeat_byte(0xc0),
                },
            )
            .unwrap();
        store
    }

    fn id(byte: u8) -> B256 {
        B256::repeat_byte(byte)
    }

    #[test]
    fn the_audit_log_cannot_be_changed_or_shortened() {
        let store = store();
        let lines = store.audit(Some(id(1)), 100).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].event, "chain: created");
        assert_eq!(lines[0].actor, "watcher");
        assert_eq!(
            lines[0].detail.as_deref(),
            Some(format!("block 10, tx {}", B256::repeat_byte(0xe1)).as_str())
        );
        for statement in [
            "UPDATE audit SET event = 'nothing happened'",
            "DELETE FROM audit",
            "INSERT OR REPLACE INTO audit (seq, at, actor, event) VALUES (1, 0, 'x', 'rewritten')",
        ] {
            let error = store.connection.execute(statement, []).unwrap_err();
            assert!(
                error.to_string().contains("the audit log is append-only"),
                "{error}"
            );
        }
        assert_eq!(store.audit(None, 100).unwrap().len(), 6);
    }

    #[test]
    fn every_settlement_change_and_transaction_is_logged_by_the_store_itself() {
        let mut store = store();
        store.intend(id(1), 100).unwrap();
        let attempt = Attempt {
            tx_hash: B256::repeat_byte(0x77),
            nonce: 4,
            max_fee_per_gas: 30,
            max_priority_fee_per_gas: 2,
            raw: vec![1, 2, 3].into(),
            sent_at: 101,
        };
        store
            .record_signed(&[(id(1), SettlementCall::FulfilAndRelease, attempt)])
            .unwrap();
        store.mark_sent(&[id(1)], 102).unwrap();
        store
            .finish_action(
                id(1),
                ActionState::Confirmed,
                Some((B256::repeat_byte(0x77), 12)),
                "released",
                103,
            )
            .unwrap();
        let lines: Vec<(u64, String, String, Option<String>)> = store
            .audit(Some(id(1)), 100)
            .unwrap()
            .into_iter()
            .skip(1)
            .map(|line| (line.at, line.actor, line.event, line.detail))
            .collect();
        assert_eq!(
            lines,
            [
                (100, "keeper".into(), "settlement pending".into(), None),
                (
                    101,
                    "executor".into(),
                    "transaction signed".into(),
                    Some(format!(
                        "nonce 4, tx {}, max fee 30 wei, tip 2 wei",
                        B256::repeat_byte(0x77)
                    ))
                ),
                (
                    101,
                    "executor".into(),
                    "settlement pending -> signed".into(),
                    None
                ),
                (
                    102,
                    "executor".into(),
                    "settlement signed -> sent".into(),
                    None
                ),
                (
                    103,
                    "executor".into(),
                    "settlement sent -> confirmed".into(),
                    Some("released".into())
                ),
            ]
        );
    }

    #[test]
    fn retry_and_abandon_apply_only_where_they_are_safe() {
        let mut store = store();
        // 1: failed. 2: pending. 3: sent (a transaction in flight). 4: confirmed. 5: none.
        for byte in 1..=4 {
            store.intend(id(byte), 100).unwrap();
        }
        // 1 was sent, mined and reverted.
        let reverted = Attempt {
            tx_hash: B256::repeat_byte(0x55),
            nonce: 0,
            max_fee_per_gas: 1,
            max_priority_fee_per_gas: 1,
            raw: vec![1].into(),
            sent_at: 100,
        };
        store
            .record_signed(&[(id(1), SettlementCall::FulfilAndRelease, reverted)])
            .unwrap();
        store
            .finish_action(id(1), ActionState::Failed, None, "would revert", 101)
            .unwrap();
        store
            .set_action_state(id(3), ActionState::Sent, None, 101)
            .unwrap();
        store
            .finish_action(id(4), ActionState::Confirmed, None, "released", 101)
            .unwrap();
        let requests = [
            (RequestKind::Retry, 1, "applied: the settlement is pending"),
            (
                RequestKind::Abandon,
                2,
                "applied: the settlement is abandoned",
            ),
            (
                RequestKind::Abandon,
                3,
                "refused: the settlement is sent (a transaction is in flight and may still be \
                 mined); ask again once it ends",
            ),
            (
                RequestKind::Retry,
                4,
                "refused: the settlement is confirmed: nothing is left to do",
            ),
            (
                RequestKind::Abandon,
                5,
                "applied: the settlement is abandoned",
            ),
            (
                RequestKind::Retry,
                9,
                "refused: no agreement of this keeper has this id",
            ),
            // Retried after the abandon above, in order.
            (RequestKind::Retry, 2, "applied: the settlement is pending"),
            (
                RequestKind::Retry,
                2,
                "refused: the settlement is already pending",
            ),
        ];
        for (kind, byte, _) in &requests {
            store
                .request(*kind, Some(id(*byte)), None, "because", 200)
                .unwrap();
        }
        let applied = store.apply_settlement_requests(201).unwrap();
        let results: Vec<&str> = applied
            .iter()
            .map(|request| request.result.as_deref().unwrap())
            .collect();
        let expected: Vec<&str> = requests.iter().map(|(_, _, result)| *result).collect();
        assert_eq!(results, expected);
        let state = |byte| store.action(id(byte)).unwrap().map(|action| action.state);
        assert_eq!(state(1), Some(ActionState::Pending));
        // The retried settlement starts afresh: the reverted transaction is no longer followed,
        // and stays in the audit log.
        assert!(store.attempts(id(1)).unwrap().is_empty());
        assert!(store.action(id(1)).unwrap().unwrap().nonce.is_none());
        assert!(
            store
                .audit(Some(id(1)), 100)
                .unwrap()
                .iter()
                .any(|line| line.event == "transaction signed")
        );
        assert_eq!(state(2), Some(ActionState::Pending));
        assert_eq!(state(3), Some(ActionState::Sent));
        assert_eq!(state(4), Some(ActionState::Confirmed));
        assert_eq!(state(5), Some(ActionState::Abandoned));
        assert_eq!(state(9), None, "nothing created for an unknown id");
        assert!(
            store
                .open_requests(&[RequestKind::Retry, RequestKind::Abandon])
                .unwrap()
                .is_empty()
        );
        assert!(
            store.apply_settlement_requests(202).unwrap().is_empty(),
            "applied once"
        );
        // The operator's lines carry the reason and the result, refused ones too.
        let lines = store.audit(Some(id(3)), 100).unwrap();
        let last = lines.last().unwrap();
        assert_eq!(
            (last.actor.as_str(), last.event.as_str()),
            ("operator", "abandon requested")
        );
        assert!(
            last.detail
                .as_deref()
                .unwrap()
                .starts_with("because; refused")
        );
        assert_eq!(store.requests_for(id(2)).unwrap().len(), 3);
    }

    #[test]
    fn a_reindex_moves_the_cursor_back_and_is_logged_keeper_wide() {
        let mut store = store();
        let seq = store
            .request(RequestKind::Reindex, None, Some(15), "dropped logs", 300)
            .unwrap();
        let request = store
            .open_requests(&[RequestKind::Reindex])
            .unwrap()
            .remove(0);
        assert_eq!(request.seq, seq);
        assert!(
            store
                .open_requests(&[RequestKind::Retry])
                .unwrap()
                .is_empty(),
            "kinds are kept apart"
        );
        let restart = Checkpoint {
            number: 14,
            hash: B256::repeat_byte(0x14),
        };
        store
            .apply_reindex(&request, Some(restart), "applied: again from 15", 301)
            .unwrap();
        assert_eq!(store.cursor().unwrap(), Some(restart));
        assert_eq!(
            store.agreements(None).unwrap().len(),
            6,
            "recorded agreements stay"
        );
        let applied = store.operator_request(seq).unwrap().unwrap();
        assert_eq!(applied.applied_at, Some(301));
        assert_eq!(applied.result.as_deref(), Some("applied: again from 15"));
        let last = store.audit(None, 1).unwrap().remove(0);
        assert_eq!(last.agreement_id, None);
        assert_eq!(last.event, "re-index from block 15 requested");
        assert_eq!(
            last.detail.as_deref(),
            Some("dropped logs; applied: again from 15")
        );
        // From the watcher's first block: no cursor at all.
        let seq = store
            .request(RequestKind::Reindex, None, Some(0), "all", 302)
            .unwrap();
        let request = store.operator_request(seq).unwrap().unwrap();
        store.apply_reindex(&request, None, "applied", 303).unwrap();
        assert_eq!(store.cursor().unwrap(), None);
    }
}
