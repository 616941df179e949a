//! A provider's evidence of the rounds it served in a federated run: its keeper's signed round
//! log, EIP-712 typed data in the keepers' request domain (see [`crate::requests::domain`]: the
//! chain id and the compute condition), signed by the provider's account.
//!
//! The keeper builds the log from its SuperNode's record of the replies the aggregator accepted
//! ([`RoundLog::from_records`]), signs it when the run ends, and serves it; the consumer checks
//! it ([`SignedRoundLog::verify`]) before it names the log's hash ([`SignedRoundLog::hash`]) in
//! the final model's metadata. A log that does not hold together (rounds out of order, a missing
//! count, another run) is refused when built; a log changed after signing, or signed by anybody
//! but the provider named in it, is refused when checked.

use alloy::{
    primitives::{Address, B256, Signature},
    sol_types::{Eip712Domain, SolStruct},
};

alloy::sol! {
    /// One round a provider served: the model update its SuperNode delivered.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct ServedRound {
        /// The round, counted from 1 by the provider's SuperNode.
        uint32 round;
        /// Flower's object id (SHA-256) of the model weights delivered.
        bytes32 update;
        /// Flower's object id (SHA-256) of the reply that carried them.
        bytes32 message;
        /// Rows the update was trained on, as reported with it.
        uint64 samples;
    }

    /// A provider's keeper's log of the rounds it served for one agreement.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct RoundLog {
        /// The compute agreement.
        bytes32 agreementId;
        /// The asset trained on.
        bytes32 did;
        /// The provider, whose account signs.
        address provider;
        /// The Flower run the rounds belong to.
        uint64 run;
        /// The rounds, in order.
        ServedRound[] rounds;
        /// Unix time the log was closed.
        uint64 closedAt;
    }
}

/// Why a round log was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoundLogError {
    /// A line of the SuperNode's record is not what it writes.
    #[error("line {line} of the round record: {reason}")]
    Record {
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The record holds no training round.
    #[error("the round record holds no training round")]
    Empty,
    /// The signature is not a signature, or not in its canonical form.
    #[error("the round log's signature is malformed or not in its canonical form")]
    Malformed,
    /// Signed by another account than the provider it names.
    #[error("the round log is signed by {signer}, not by its provider {provider}")]
    WrongSigner {
        /// Who signed.
        signer: Address,
        /// Who should have.
        provider: Address,
    },
}

/// One line of the SuperNode's record (`insitu_flower.supernode`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    run: Option<u64>,
    round: Option<u32>,
    kind: Option<String>,
    message: Option<String>,
    update: Option<String>,
    samples: Option<u64>,
    error: Option<String>,
}

fn object_id(value: Option<&str>, what: &str) -> Result<B256, String> {
    let value = value.ok_or_else(|| format!("no {what}"))?;
    if value.len() != 64 || !value.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(format!("{what} {value:?} is not a SHA-256 in hex"));
    }
    value
        .parse::<B256>()
        .map_err(|error| format!("{what}: {error}"))
}

impl RoundLog {
    /// The log of the training rounds in `record` (the SuperNode's JSON lines), for
    /// `agreement_id` on `did` served by `provider`, closed at `closed_at`. Evaluation replies
    /// are not rounds and are left out; every training reply must name its run (the same
    /// throughout), its round (1, 2, ... in order), its reply and update ids and its row count.
    ///
    /// # Errors
    ///
    /// [`RoundLogError::Record`] naming the first line that is not so, or
    /// [`RoundLogError::Empty`] when no training round is recorded.
    pub fn from_records(
        record: &str,
        agreement_id: B256,
        did: B256,
        provider: Address,
        closed_at: u64,
    ) -> Result<Self, RoundLogError> {
        let mut run = None;
        let mut rounds: Vec<ServedRound> = Vec::new();
        for (index, text) in record.lines().enumerate() {
            let line = index + 1;
            let refuse = |reason: String| RoundLogError::Record { line, reason };
            if text.trim().is_empty() {
                continue;
            }
            let entry: RecordLine =
                serde_json::from_str(text).map_err(|error| refuse(error.to_string()))?;
            if let Some(error) = entry.error {
                return Err(refuse(format!(
                    "the SuperNode could not record a reply: {error}"
                )));
            }
            let this_run = entry.run.ok_or_else(|| refuse("no run".into()))?;
            if *run.get_or_insert(this_run) != this_run {
                return Err(refuse(format!("run {this_run} in a log of run {run:?}")));
            }
            if entry.kind.as_deref() != Some("train") {
                continue;
            }
            let round = entry.round.ok_or_else(|| refuse("no round".into()))?;
            let expected = u32::try_from(rounds.len() + 1).unwrap_or(u32::MAX);
            if round != expected {
                return Err(refuse(format!("round {round} where {expected} was due")));
            }
            rounds.push(ServedRound {
                round,
                update: object_id(entry.update.as_deref(), "update").map_err(refuse)?,
                message: object_id(entry.message.as_deref(), "message").map_err(refuse)?,
                samples: entry
                    .samples
                    .ok_or_else(|| refuse("no sample count".into()))?,
            });
        }
        let run = run.ok_or(RoundLogError::Empty)?;
        if rounds.is_empty() {
            return Err(RoundLogError::Empty);
        }
        Ok(Self {
            agreementId: agreement_id,
            did,
            provider,
            run,
            rounds,
            closedAt: closed_at,
        })
    }

    /// The hash the provider signs in `domain`.
    pub fn signing_hash(&self, domain: &Eip712Domain) -> B256 {
        self.eip712_signing_hash(domain)
    }
}

/// A round log with its provider's signature, as a keeper serves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedRoundLog {
    /// The log.
    pub log: RoundLog,
    /// The provider's 65-byte signature of [`RoundLog::signing_hash`].
    pub signature: alloy::primitives::Bytes,
}

impl SignedRoundLog {
    /// Checks the signature in `domain`: returns the provider when it signed this very log. Only
    /// the canonical form of a signature is accepted (low `s`, `v` 27 or 28, as a keeper signs),
    /// so that one log has one [`SignedRoundLog::hash`].
    ///
    /// # Errors
    ///
    /// [`RoundLogError::Malformed`] (also for a signature in another form) or
    /// [`RoundLogError::WrongSigner`].
    pub fn verify(&self, domain: &Eip712Domain) -> Result<Address, RoundLogError> {
        let signature =
            Signature::try_from(self.signature.as_ref()).map_err(|_| RoundLogError::Malformed)?;
        if signature.normalize_s().is_some() || signature.as_bytes()[..] != self.signature[..] {
            return Err(RoundLogError::Malformed);
        }
        let signer = signature
            .recover_address_from_prehash(&self.log.signing_hash(domain))
            .map_err(|_| RoundLogError::Malformed)?;
        if signer != self.log.provider {
            return Err(RoundLogError::WrongSigner {
                signer,
                provider: self.log.provider,
            });
        }
        Ok(signer)
    }

    /// The hash that names this signed log (in the final model's metadata): keccak256 of the
    /// signing hash in `domain` and the signature.
    pub fn hash(&self, domain: &Eip712Domain) -> B256 {
        let mut bytes = self.log.signing_hash(domain).to_vec();
        bytes.extend_from_slice(&self.signature);
        alloy::primitives::keccak256(bytes)
    }
}
