//! Receipts: what a partner keeps to prove a result came from the room. A receipt is a signed
//! note (the same format as audit checkpoints) over a canonical text of the job's facts, signed
//! with the room's Ed25519 key (the host signs [`Receipt::text`]); `strongroom receipt verify`
//! checks it offline.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::merkle::{Hash, leaf_hash, verify_inclusion};
use crate::note::{Verifier, open};

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReceiptError(String);

impl From<String> for ReceiptError {
    fn from(message: String) -> Self {
        ReceiptError(message)
    }
}

impl From<&str> for ReceiptError {
    fn from(message: &str) -> Self {
        ReceiptError(message.to_string())
    }
}

/// Where the job's release entry sits in the room's audit log, with the proof that it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    /// Index of the entry.
    pub index: u64,
    /// Size of the tree the proof is for.
    pub size: u64,
    /// Root of that tree.
    pub root: Hash,
    /// Inclusion proof of the entry.
    pub proof: Vec<Hash>,
    /// The entry's canonical text (partner-safe: hashes, codes, no guest text).
    pub entry: String,
}

/// The facts a receipt binds together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Room name.
    pub room: String,
    /// Job id.
    pub job: String,
    /// Partner.
    pub partner: String,
    /// SHA-256 of the module, hex.
    pub module_sha256: String,
    /// A SQL job's query and plan hashes (the module is the SQL engine).
    pub sql: Option<crate::event::SqlHashes>,
    /// Dataset name.
    pub dataset: String,
    /// SHA-256 identifying the dataset's content, hex.
    pub dataset_sha256: String,
    /// SHA-256 of the policy text, hex.
    pub policy_sha256: String,
    /// Outcome code.
    pub outcome: String,
    /// SHA-256 of the released result's canonical JSON, hex, or "none".
    pub result_sha256: String,
    /// Cost charged, as a decimal rho.
    pub cost_rho: String,
    /// When the job finished, RFC 3339 UTC.
    pub time: String,
    /// The job's entry in the audit log, with its inclusion proof.
    pub log: Option<LogPosition>,
}

const HEADER: &str = "strongroom receipt v1";

impl Receipt {
    /// The canonical text: fixed order, one `key value` a line, no spaces inside values.
    pub fn text(&self) -> String {
        format!(
            "{HEADER}\nroom {}\njob {}\npartner {}\nmodule sha256:{}\n{}dataset {} sha256:{}\npolicy sha256:{}\noutcome {}\nresult {}\ncost rho {}\ntime {}\n",
            self.room,
            self.job,
            self.partner,
            self.module_sha256,
            match &self.sql {
                Some(s) => format!(
                    "query sha256:{}\nplan sha256:{}\n",
                    s.query_sha256, s.plan_sha256
                ),
                None => String::new(),
            },
            self.dataset,
            self.dataset_sha256,
            self.policy_sha256,
            self.outcome,
            if self.result_sha256 == "none" {
                "none".to_string()
            } else {
                format!("sha256:{}", self.result_sha256)
            },
            self.cost_rho,
            self.time
        ) + &match &self.log {
            Some(log) => format!(
                "log index {}\nlog size {}\nlog root {}\nlog proof {}\nlog entry {}\n",
                log.index,
                log.size,
                B64.encode(log.root),
                if log.proof.is_empty() {
                    "-".to_string()
                } else {
                    log.proof
                        .iter()
                        .map(|h| B64.encode(h))
                        .collect::<Vec<_>>()
                        .join(",")
                },
                log.entry
            ),
            None => String::new(),
        }
    }

    /// Verifies a signed receipt against the room's key and parses it; when it carries a log
    /// position, also checks the entry's inclusion proof and that the entry states the same facts.
    pub fn verify(note: &str, verifier: &Verifier) -> Result<Receipt, ReceiptError> {
        let text = open(note, verifier).map_err(|e| e.to_string())?;
        let receipt = Receipt::parse(&text)?;
        if let Some(log) = &receipt.log {
            verify_inclusion(
                log.index,
                log.size,
                &leaf_hash(log.entry.as_bytes()),
                &log.proof,
                &log.root,
            )
            .map_err(|e| format!("the log inclusion proof does not verify: {e}"))?;
            let entry: serde_json::Value = serde_json::from_str(&log.entry)
                .map_err(|_| ReceiptError::from("the log entry is not JSON"))?;
            let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).map(String::from);
            let agrees = field("job").as_deref() == Some(receipt.job.as_str())
                && field("module_sha256").as_deref() == Some(receipt.module_sha256.as_str())
                && field("result_sha256").as_deref() == Some(receipt.result_sha256.as_str())
                && field("policy_sha256").as_deref() == Some(receipt.policy_sha256.as_str())
                && field("outcome").as_deref() == Some(receipt.outcome.as_str())
                && field("query_sha256") == receipt.sql.as_ref().map(|s| s.query_sha256.clone())
                && field("plan_sha256") == receipt.sql.as_ref().map(|s| s.plan_sha256.clone());
            if !agrees {
                return Err("the log entry does not state the receipt's facts".into());
            }
        }
        Ok(receipt)
    }

    fn parse(text: &str) -> Result<Receipt, String> {
        let mut lines = text.lines().peekable();
        if lines.next() != Some(HEADER) {
            return Err("not a strongroom receipt".into());
        }
        let mut next = |key: &str| -> Result<String, String> {
            // A SQL job's two lines come after the module's; other receipts have none.
            if matches!(key, "query" | "plan") && !lines.peek().is_some_and(|l| l.starts_with(key))
            {
                return Ok(String::new());
            }
            lines
                .next()
                .and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix(' '))
                .map(String::from)
                .ok_or_else(|| format!("receipt line '{key}' missing or out of order"))
        };
        let sha = |v: String| {
            v.strip_prefix("sha256:")
                .map(String::from)
                .ok_or("expected sha256:".to_string())
        };
        let room = next("room")?;
        let job = next("job")?;
        let partner = next("partner")?;
        let module_sha256 = sha(next("module")?)?;
        let query = next("query")?;
        let plan = next("plan")?;
        let sql = match (query.is_empty(), plan.is_empty()) {
            (true, true) => None,
            (false, false) => Some(crate::event::SqlHashes {
                query_sha256: sha(query)?,
                plan_sha256: sha(plan)?,
            }),
            _ => return Err("a receipt names both a query and a plan, or neither".into()),
        };
        let dataset_line = next("dataset")?;
        let (dataset, dataset_hash) = dataset_line
            .split_once(' ')
            .ok_or("dataset line malformed")?;
        let policy_sha256 = sha(next("policy")?)?;
        let outcome = next("outcome")?;
        let result = next("result")?;
        let result_sha256 = if result == "none" {
            result
        } else {
            sha(result)?
        };
        let cost_rho = next("cost rho")?;
        let time = next("time")?;
        let log = match lines.next() {
            None => None,
            Some(first) => {
                let index = first
                    .strip_prefix("log index ")
                    .and_then(|v| v.parse().ok())
                    .ok_or("log index malformed")?;
                let mut field = |key: &str| -> Result<String, String> {
                    lines
                        .next()
                        .and_then(|l| l.strip_prefix(key))
                        .map(String::from)
                        .ok_or_else(|| format!("receipt line '{key}' missing"))
                };
                let size = field("log size ")?
                    .parse()
                    .map_err(|_| "log size malformed")?;
                let hash = |s: &str| -> Result<Hash, String> {
                    B64.decode(s)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| "log hash malformed".to_string())
                };
                let root = hash(&field("log root ")?)?;
                let proof_text = field("log proof ")?;
                let proof = if proof_text == "-" {
                    Vec::new()
                } else {
                    proof_text.split(',').map(hash).collect::<Result<_, _>>()?
                };
                let entry = field("log entry ")?;
                Some(LogPosition {
                    index,
                    size,
                    root,
                    proof,
                    entry,
                })
            }
        };
        Ok(Receipt {
            room,
            job,
            partner,
            module_sha256,
            sql,
            dataset: dataset.to_string(),
            dataset_sha256: sha(dataset_hash.to_string())?,
            policy_sha256,
            outcome,
            result_sha256,
            cost_rho,
            time,
            log,
        })
    }
}
