//! Receipts: what a partner keeps to prove a result came from the room. A receipt is a signed
//! note (the same format as audit checkpoints) over a canonical text of the job's facts, signed
//! with the room's Ed25519 key; `strongroom receipt verify` checks it offline.

use crate::audit_log::note::{NoteError, Signer, Verifier, open};

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
}

const HEADER: &str = "strongroom receipt v1";

impl Receipt {
    /// The canonical text: fixed order, one `key value` a line, no spaces inside values.
    pub fn text(&self) -> String {
        format!(
            "{HEADER}\nroom {}\njob {}\npartner {}\nmodule sha256:{}\ndataset {} sha256:{}\npolicy sha256:{}\noutcome {}\nresult {}\ncost rho {}\ntime {}\n",
            self.room,
            self.job,
            self.partner,
            self.module_sha256,
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
        )
    }

    /// Signs the receipt into a signed note.
    pub fn sign(&self, signer: &Signer) -> Result<String, NoteError> {
        signer.sign(&self.text())
    }

    /// Verifies a signed receipt against the room's key and parses it.
    pub fn verify(note: &str, verifier: &Verifier) -> Result<Receipt, String> {
        let text = open(note, verifier).map_err(|e| e.to_string())?;
        Receipt::parse(&text)
    }

    fn parse(text: &str) -> Result<Receipt, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err("not a strongroom receipt".into());
        }
        let mut next = |key: &str| -> Result<String, String> {
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
        Ok(Receipt {
            room,
            job,
            partner,
            module_sha256,
            dataset: dataset.to_string(),
            dataset_sha256: sha(dataset_hash.to_string())?,
            policy_sha256,
            outcome,
            result_sha256,
            cost_rho,
            time,
        })
    }
}
