//! Compute jobs: one per compute agreement, from the consumer's signed order to its result.
//!
//! The API writes a job (queued) and stop requests; the compute runner moves it through its
//! phases. Each phase change is one row update, written before the work of the next phase begins,
//! and every change leaves a line in the audit log (a trigger), so a keeper killed at any point
//! finds on restart where each job was.

use alloy::primitives::{Address, B256};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, b256};

/// Where a compute job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Ordered and checked; waiting for a free slot.
    Queued,
    /// Its inputs and algorithm are being staged next to the sandbox.
    Configuring,
    /// The algorithm runs.
    Running,
    /// It succeeded; its result is being stored and described.
    Publishing,
    /// The result is stored with its document; its registration on chain and the settlement of
    /// the agreement come next.
    Settling,
    /// Registered and settled.
    Done,
    /// It failed (the algorithm, a limit, the sandbox, or a watchdog); the reason is recorded.
    Failed,
    /// Stopped on request.
    Stopped,
}

impl JobPhase {
    /// The name stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Configuring => "configuring",
            Self::Running => "running",
            Self::Publishing => "publishing",
            Self::Settling => "settling",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    /// The phase named `text`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for an unknown name.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "queued" => Self::Queued,
            "configuring" => Self::Configuring,
            "running" => Self::Running,
            "publishing" => Self::Publishing,
            "settling" => Self::Settling,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "stopped" => Self::Stopped,
            other => return Err(StoreError::Corrupt(format!("job phase `{other}`"))),
        })
    }

    /// Whether the job has ended (no phase follows).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Stopped)
    }
}

/// A compute job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The compute agreement (one job per agreement).
    pub agreement_id: B256,
    /// The asset computed on.
    pub did: B256,
    /// Who ordered it.
    pub consumer: Address,
    /// The algorithm's SHA-256, lower-case hex.
    pub algorithm_sha256: String,
    /// The algorithm's asset, when it came from one.
    pub algorithm_did: Option<B256>,
    /// The runtime's name.
    pub runtime: String,
    /// The parameters, a JSON object of strings.
    pub params: String,
    /// Where it stands.
    pub phase: JobPhase,
    /// Unix time it entered its phase.
    pub phase_since: u64,
    /// Runs started (a run interrupted by a restart is started again, a bounded number of times).
    pub runs: u32,
    /// How the run ended (the sandbox's outcome, JSON), once it has.
    pub outcome: Option<String>,
    /// Why it failed or stopped, in words.
    pub reason: Option<String>,
    /// The result's files and document (JSON), once published.
    pub result: Option<String>,
    /// Whether a stop was asked.
    pub stop_requested: bool,
    /// Unix time it was ordered.
    pub created_at: u64,
}

/// What a new job is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The compute agreement.
    pub agreement_id: B256,
    /// The asset.
    pub did: B256,
    /// The consumer.
    pub consumer: Address,
    /// The algorithm's SHA-256, lower-case hex.
    pub algorithm_sha256: String,
    /// The algorithm's asset, when it came from one.
    pub algorithm_did: Option<B256>,
    /// The runtime's name.
    pub runtime: String,
    /// The parameters, a JSON object of strings.
    pub params: String,
}

pub(super) const MIGRATION: &str = "CREATE TABLE jobs (
        agreement_id BLOB PRIMARY KEY,
        did BLOB NOT NULL,
        consumer BLOB NOT NULL,
        algorithm_sha256 TEXT NOT NULL,
        algorithm_did BLOB,
        runtime TEXT NOT NULL,
        params TEXT NOT NULL,
        phase TEXT NOT NULL,
        phase_since INTEGER NOT NULL,
        runs INTEGER NOT NULL DEFAULT 0,
        outcome TEXT,
        reason TEXT,
        result TEXT,
        stop_requested INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_phase ON jobs (phase, created_at);
    CREATE TRIGGER audit_job_ordered AFTER INSERT ON jobs
    BEGIN
        INSERT INTO audit (agreement_id, at, actor, event, detail)
        VALUES (NEW.agreement_id, NEW.created_at, 'consumer', 'job ordered',
                'algorithm ' || NEW.algorithm_sha256 || ', runtime ' || NEW.runtime);
    END;
    CREATE TRIGGER audit_job_moved AFTER UPDATE OF phase ON jobs
    WHEN OLD.phase <> NEW.phase
    BEGIN
        INSERT INTO audit (agreement_id, at, actor, event, detail)
        VALUES (NEW.agreement_id, NEW.phase_since, 'runner',
                'job ' || OLD.phase || ' -> ' || NEW.phase, NEW.reason);
    END;
    CREATE TRIGGER audit_job_stop_asked AFTER UPDATE OF stop_requested ON jobs
    WHEN OLD.stop_requested = 0 AND NEW.stop_requested = 1
    BEGIN
        INSERT INTO audit (agreement_id, at, actor, event, detail)
        VALUES (NEW.agreement_id, CAST(strftime('%s', 'now') AS INTEGER), 'consumer',
                'job stop asked', NULL);
    END;";

const COLUMNS: &str = "agreement_id, did, consumer, algorithm_sha256, runtime, params, phase, \
                       phase_since, runs, outcome, reason, result, stop_requested, created_at, \
                       algorithm_did";

fn job_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Job, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let did: Vec<u8> = row.get(1)?;
    let consumer: Vec<u8> = row.get(2)?;
    let phase: String = row.get(6)?;
    let fields = (
        row.get::<_, String>(3)?,
        row.get::<_, String>(4)?,
        row.get::<_, String>(5)?,
        row.get::<_, u64>(7)?,
        row.get::<_, u32>(8)?,
        row.get::<_, Option<String>>(9)?,
        row.get::<_, Option<String>>(10)?,
        row.get::<_, Option<String>>(11)?,
        row.get::<_, bool>(12)?,
        row.get::<_, u64>(13)?,
    );
    let algorithm_did: Option<Vec<u8>> = row.get(14)?;
    Ok((|| {
        let (
            algorithm_sha256,
            runtime,
            params,
            phase_since,
            runs,
            outcome,
            reason,
            result,
            stop_requested,
            created_at,
        ) = fields;
        Ok(Job {
            agreement_id: b256(&id)?,
            did: b256(&did)?,
            consumer: Address::try_from(consumer.as_slice())
                .map_err(|_| StoreError::Corrupt("consumer address".into()))?,
            algorithm_sha256,
            algorithm_did: algorithm_did.as_deref().map(b256).transpose()?,
            runtime,
            params,
            phase: JobPhase::parse(&phase)?,
            phase_since,
            runs,
            outcome,
            reason,
            result,
            stop_requested,
            created_at,
        })
    })())
}

impl Store {
    /// Records a new job, queued. Returns `false` (and changes nothing) when the agreement has
    /// one already.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn order_job(&mut self, job: &NewJob, now: u64) -> Result<bool, StoreError> {
        let inserted = self.connection.execute(
            "INSERT INTO jobs (agreement_id, did, consumer, algorithm_sha256, runtime, params,
                               phase, phase_since, created_at, algorithm_did)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7, ?8)
             ON CONFLICT (agreement_id) DO NOTHING",
            params![
                job.agreement_id.as_slice(),
                job.did.as_slice(),
                job.consumer.as_slice(),
                job.algorithm_sha256,
                job.runtime,
                job.params,
                now,
                job.algorithm_did.map(|did| did.to_vec())
            ],
        )?;
        Ok(inserted == 1)
    }

    /// The job of agreement `id`.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn job(&self, id: B256) -> Result<Option<Job>, StoreError> {
        self.connection
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE agreement_id = ?1"),
                [id.as_slice()],
                job_from,
            )
            .optional()?
            .transpose()
    }

    /// The jobs in `phase`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn jobs(&self, phase: JobPhase) -> Result<Vec<Job>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE phase = ?1 ORDER BY created_at, agreement_id"
        ))?;
        let rows = statement.query_map([phase.as_str()], job_from)?;
        rows.map(|row| row?).collect()
    }

    /// Moves job `id` from `from` to `to` (with a reason for a failure or a stop), unless it has
    /// left `from` already. Returns whether it moved.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn move_job(
        &mut self,
        id: B256,
        from: JobPhase,
        to: JobPhase,
        reason: Option<&str>,
        now: u64,
    ) -> Result<bool, StoreError> {
        let moved = self.connection.execute(
            "UPDATE jobs SET phase = ?3, phase_since = ?4, reason = COALESCE(?5, reason)
             WHERE agreement_id = ?1 AND phase = ?2",
            params![id.as_slice(), from.as_str(), to.as_str(), now, reason],
        )?;
        Ok(moved == 1)
    }

    /// Counts one more run of job `id` (when it enters `running`).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn count_job_run(&mut self, id: B256) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE jobs SET runs = runs + 1 WHERE agreement_id = ?1",
            [id.as_slice()],
        )?;
        Ok(())
    }

    /// Records how job `id`'s run ended (JSON).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn record_job_outcome(&mut self, id: B256, outcome: &str) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE jobs SET outcome = ?2 WHERE agreement_id = ?1",
            params![id.as_slice(), outcome],
        )?;
        Ok(())
    }

    /// Records job `id`'s result (JSON), moves it from publishing to settling and writes the
    /// intent to settle its agreement (registration, then fulfilment and release), in one
    /// transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; then nothing changes.
    pub fn record_job_result(
        &mut self,
        id: B256,
        result: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let tx = self.connection.transaction()?;
        let moved = tx.execute(
            "UPDATE jobs SET result = ?2, phase = 'settling', phase_since = ?3
             WHERE agreement_id = ?1 AND phase = 'publishing'",
            params![id.as_slice(), result, now],
        )?;
        if moved == 1 {
            // An action failed before the result existed (an operator's early retry) is decided
            // again now that there is a result; an abandoned one stays as the operator left it.
            tx.execute(
                "INSERT INTO actions (agreement_id, state, created_at, updated_at) \
                 VALUES (?1, 'pending', ?2, ?2) \
                 ON CONFLICT (agreement_id) DO UPDATE SET state = 'pending', nonce = NULL, \
                 call = NULL, updated_at = ?2 WHERE actions.state = 'failed'",
                params![id.as_slice(), now],
            )?;
        }
        tx.commit()?;
        Ok(moved == 1)
    }

    /// Asks job `id` to stop. Returns its phase, or `None` when there is no such job.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub fn request_job_stop(&mut self, id: B256) -> Result<Option<JobPhase>, StoreError> {
        self.connection.execute(
            "UPDATE jobs SET stop_requested = 1 WHERE agreement_id = ?1",
            [id.as_slice()],
        )?;
        Ok(self.job(id)?.map(|job| job.phase))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_job(byte: u8) -> NewJob {
        NewJob {
            agreement_id: B256::repeat_byte(byte),
            did: B256::repeat_byte(0xd1),
            consumer: Address::repeat_byte(0xc0),
            algorithm_sha256: "ab".repeat(32),
            algorithm_did: (byte == 2).then(|| B256::repeat_byte(0xa1)),
            runtime: "python3".into(),
            params: "{}".into(),
        }
    }

    #[test]
    fn a_job_is_ordered_once_and_moves_only_from_where_it_is() {
        let mut store = Store::in_memory().unwrap();
        let id = B256::repeat_byte(1);
        assert!(store.order_job(&new_job(1), 100).unwrap());
        assert!(
            !store.order_job(&new_job(1), 101).unwrap(),
            "one job per agreement"
        );
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(
            (job.phase, job.phase_since, job.runs),
            (JobPhase::Queued, 100, 0)
        );
        assert_eq!(job.consumer, Address::repeat_byte(0xc0));

        assert!(
            store
                .move_job(id, JobPhase::Queued, JobPhase::Configuring, None, 110)
                .unwrap()
        );
        assert!(
            !store
                .move_job(id, JobPhase::Queued, JobPhase::Running, None, 111)
                .unwrap(),
            "no longer queued"
        );
        assert!(
            store
                .move_job(id, JobPhase::Configuring, JobPhase::Running, None, 112)
                .unwrap()
        );
        store.count_job_run(id).unwrap();
        store
            .record_job_outcome(id, r#"{"ending":"succeeded"}"#)
            .unwrap();
        assert!(
            store
                .move_job(id, JobPhase::Running, JobPhase::Publishing, None, 120)
                .unwrap()
        );
        assert!(store.record_job_result(id, r#"{"files":[]}"#, 130).unwrap());
        // Its settlement is intended in the same step.
        assert_eq!(
            store.action(id).unwrap().unwrap().state,
            crate::store::ActionState::Pending
        );
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.phase, JobPhase::Settling);
        assert_eq!(job.runs, 1);
        assert_eq!(job.result.as_deref(), Some(r#"{"files":[]}"#));
        assert!(!job.phase.is_final());

        // Every step is in the audit log, in order.
        let events: Vec<String> = store
            .audit(Some(id), 100)
            .unwrap()
            .into_iter()
            .map(|entry| entry.event)
            .collect();
        assert_eq!(
            events,
            [
                "job ordered",
                "job queued -> configuring",
                "job configuring -> running",
                "job running -> publishing",
                "job publishing -> settling",
                "settlement pending",
            ]
        );
    }

    #[test]
    fn jobs_are_listed_by_phase_oldest_first_and_stops_are_recorded() {
        let mut store = Store::in_memory().unwrap();
        store.order_job(&new_job(2), 200).unwrap();
        store.order_job(&new_job(1), 100).unwrap();
        let queued: Vec<B256> = store
            .jobs(JobPhase::Queued)
            .unwrap()
            .into_iter()
            .map(|job| job.agreement_id)
            .collect();
        assert_eq!(queued, [B256::repeat_byte(1), B256::repeat_byte(2)]);
        let from_asset = store.job(B256::repeat_byte(2)).unwrap().unwrap();
        assert_eq!(from_asset.algorithm_did, Some(B256::repeat_byte(0xa1)));
        assert_eq!(
            store.request_job_stop(B256::repeat_byte(1)).unwrap(),
            Some(JobPhase::Queued)
        );
        assert!(
            store
                .job(B256::repeat_byte(1))
                .unwrap()
                .unwrap()
                .stop_requested
        );
        assert_eq!(store.request_job_stop(B256::repeat_byte(9)).unwrap(), None);
        store
            .move_job(
                B256::repeat_byte(1),
                JobPhase::Queued,
                JobPhase::Stopped,
                Some("asked"),
                300,
            )
            .unwrap();
        let stopped = store.job(B256::repeat_byte(1)).unwrap().unwrap();
        assert_eq!(stopped.reason.as_deref(), Some("asked"));
        assert!(stopped.phase.is_final());
        let audit = store.audit(Some(B256::repeat_byte(1)), 10).unwrap();
        assert!(audit.iter().any(|entry| entry.event == "job stop asked"));
        assert!(
            audit
                .iter()
                .any(|entry| entry.event == "job queued -> stopped"
                    && entry.detail.as_deref() == Some("asked"))
        );
    }
}
