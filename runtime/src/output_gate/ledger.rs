//! The privacy ledger: per partner and privacy domain, the charges against a budget, in nano-rho
//! (zCDP). A domain groups the datasets that describe the same people, so re-sealing the same
//! customers under another name does not give a partner a fresh budget. A job's cost is charged
//! durably before its module runs, and a charge is never refunded, whatever happens to the job
//! after it. The total is the one the policy for the job's dataset sets.
//!
//! A charge is one write on the room's writer, inside a `BEGIN IMMEDIATE` transaction: it holds SQLite's write lock while reading
//! what is spent, so two jobs racing for the last of a budget are serialised and cannot both pass.
//! (On PostgreSQL the same code would lock the budget row with `SELECT ... FOR UPDATE`.)

use crate::params;
use crate::room::db::{Conn, OptionalExtension, SqlError};

use super::mechanism::format_nano;
use crate::clock::now_rfc3339;
use crate::group_commit::WriteError;
use crate::room::db::Db;

/// Why a charge was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// No budget is set for this partner and dataset.
    #[error("no privacy budget is set for partner '{partner}' on dataset '{dataset}'")]
    NoBudget {
        /// Partner.
        partner: String,
        /// Dataset.
        dataset: String,
    },
    /// The cost is more than what remains.
    #[error("privacy budget exhausted: the job costs rho {}, {} of {} remains", format_nano(*cost), format_nano(*remaining), format_nano(*total))]
    Exhausted {
        /// Cost asked.
        cost: u64,
        /// What remains.
        remaining: u64,
        /// Total.
        total: u64,
    },
    /// The partner ran as many jobs in the last 24 hours as the policy allows.
    #[error("the policy allows {cap} jobs a day in this privacy domain; try again later")]
    TooManyJobs {
        /// The cap.
        cap: u64,
    },
    /// The same job id was charged before.
    #[error("job '{0}' was already charged")]
    DuplicateJob(String),
    /// The write holding the charge failed.
    #[error("ledger database: {0}")]
    Write(#[from] WriteError),
}

impl From<SqlError> for LedgerError {
    fn from(e: SqlError) -> Self {
        LedgerError::Write(e.into())
    }
}

/// A budget and what is spent of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BudgetStatus {
    /// Partner.
    pub partner: String,
    /// Dataset.
    pub dataset: String,
    /// The privacy domain whose charges count against this budget.
    pub domain: String,
    /// Total, nano-rho.
    pub total_nano_rho: u64,
    /// Spent, nano-rho.
    pub spent_nano_rho: u64,
    /// Number of charges.
    pub jobs: u64,
}

/// One charge to make.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    /// Partner.
    pub partner: &'a str,
    /// Dataset the job runs on (its policy sets the total).
    pub dataset: &'a str,
    /// The dataset's privacy domain.
    pub domain: &'a str,
    /// Job id.
    pub job_id: &'a str,
    /// Cost, nano-rho.
    pub cost: u64,
    /// Most jobs in any 24 hours in the domain, if capped.
    pub max_jobs_per_day: Option<u64>,
}

impl BudgetStatus {
    /// What remains, nano-rho.
    pub fn remaining(&self) -> u64 {
        self.total_nano_rho.saturating_sub(self.spent_nano_rho)
    }
}

/// The ledger over the room's database.
#[derive(Clone)]
pub struct PrivacyLedger {
    db: Db,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PrivacyLedger {
    /// A ledger in `db`.
    pub fn new(db: Db) -> Self {
        PrivacyLedger { db }
    }

    /// Sets (or replaces) the total budget of a partner on a dataset. Spent amounts are kept.
    pub async fn set_budget(
        &self,
        partner: &str,
        dataset: &str,
        total_nano_rho: u64,
    ) -> Result<(), LedgerError> {
        self.db
            .write(|conn| Self::set_budget_in(conn, partner, dataset, total_nano_rho))
    }

    /// [`PrivacyLedger::set_budget`] inside the caller's write.
    pub fn set_budget_in(
        conn: &Conn<'_>,
        partner: &str,
        dataset: &str,
        total_nano_rho: u64,
    ) -> Result<(), LedgerError> {
        conn.prepare_cached(
            "INSERT INTO budgets (partner, dataset, total_nano_rho) VALUES (?, ?, ?) \
             ON CONFLICT (partner, dataset) DO UPDATE SET total_nano_rho = excluded.total_nano_rho",
        )?
        .execute(params![partner, dataset, to_i64(total_nano_rho)])?;
        Ok(())
    }

    /// Charges a job to its partner's budget in its domain, durably, or refuses. Records the
    /// dataset's domain on first use. Returns the status after the charge.
    pub async fn charge(&self, charge: &Charge<'_>) -> Result<BudgetStatus, LedgerError> {
        self.db.write(|conn| match Self::charge_in(conn, charge) {
            Ok(status) => Ok(Ok(status)),
            // A refusal keeps the dataset's domain (the only write), charges nothing.
            Err(e @ (LedgerError::TooManyJobs { .. } | LedgerError::Exhausted { .. })) => {
                Ok(Err(e))
            }
            Err(e) => Err(e),
        })?
    }

    /// [`PrivacyLedger::charge`] inside the caller's write (which holds SQLite's write lock
    /// from its start), so the charge commits together with what records it. On `TooManyJobs`
    /// or `Exhausted` only the dataset's domain was written; on other errors, roll back.
    pub fn charge_in(conn: &Conn<'_>, charge: &Charge<'_>) -> Result<BudgetStatus, LedgerError> {
        conn.prepare_cached(
            "INSERT INTO dataset_domains (dataset, domain) VALUES (?, ?) \
             ON CONFLICT (dataset) DO UPDATE SET domain = excluded.domain",
        )?
        .execute(params![charge.dataset, charge.domain])?;
        let status = status_in(conn, charge.partner, charge.dataset)?;
        if let Some(cap) = charge.max_jobs_per_day {
            let since = (time::OffsetDateTime::now_utc() - time::Duration::days(1))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let recent: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM charges WHERE partner = ? AND domain = ? AND charged_at > ?",
                )?
                .query_row(params![charge.partner, charge.domain, since], |r| r.get(0))?;
            if recent.max(0) as u64 >= cap {
                return Err(LedgerError::TooManyJobs { cap });
            }
        }
        if status.remaining() < charge.cost {
            return Err(LedgerError::Exhausted {
                cost: charge.cost,
                remaining: status.remaining(),
                total: status.total_nano_rho,
            });
        }
        let inserted = conn
            .prepare_cached(
                "INSERT INTO charges (job_id, partner, dataset, domain, cost_nano_rho, charged_at) VALUES (?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                charge.job_id,
                charge.partner,
                charge.dataset,
                charge.domain,
                to_i64(charge.cost),
                now_rfc3339()
            ]);
        match inserted {
            Err(e) if e.is_unique_violation() => {
                return Err(LedgerError::DuplicateJob(charge.job_id.to_string()));
            }
            other => other?,
        };
        Ok(BudgetStatus {
            spent_nano_rho: status.spent_nano_rho + charge.cost,
            jobs: status.jobs + 1,
            ..status
        })
    }

    /// The budget of one partner on one dataset.
    pub async fn status(&self, partner: &str, dataset: &str) -> Result<BudgetStatus, LedgerError> {
        self.db.read(|conn| status_in(conn, partner, dataset))
    }

    /// Every budget.
    pub async fn all(&self) -> Result<Vec<BudgetStatus>, LedgerError> {
        let query = "SELECT b.partner, b.dataset, COALESCE(d.domain, b.dataset) AS domain, b.total_nano_rho, \
                    CAST(COALESCE(SUM(c.cost_nano_rho), 0) AS BIGINT) AS spent, COUNT(c.job_id) AS jobs \
             FROM budgets b LEFT JOIN dataset_domains d ON d.dataset = b.dataset \
             LEFT JOIN charges c ON c.partner = b.partner AND c.domain = COALESCE(d.domain, b.dataset) \
             GROUP BY b.partner, b.dataset, d.domain, b.total_nano_rho ORDER BY b.partner, b.dataset";
        self.db.read(|conn| {
            conn.prepare_cached(query)?
                .query_map(params![], |r| {
                    Ok(BudgetStatus {
                        partner: r.get("partner")?,
                        dataset: r.get("dataset")?,
                        domain: r.get("domain")?,
                        total_nano_rho: r.get::<_, i64>("total_nano_rho")?.max(0) as u64,
                        spent_nano_rho: r.get::<_, i64>("spent")?.max(0) as u64,
                        jobs: r.get::<_, i64>("jobs")?.max(0) as u64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(LedgerError::from)
        })
    }
}

fn status_in(conn: &Conn<'_>, partner: &str, dataset: &str) -> Result<BudgetStatus, LedgerError> {
    let total: Option<i64> = conn
        .prepare_cached("SELECT total_nano_rho FROM budgets WHERE partner = ? AND dataset = ?")?
        .query_row(params![partner, dataset], |r| r.get(0))
        .optional()?;
    let Some(total) = total else {
        return Err(LedgerError::NoBudget {
            partner: partner.into(),
            dataset: dataset.into(),
        });
    };
    let domain: Option<String> = conn
        .prepare_cached("SELECT domain FROM dataset_domains WHERE dataset = ?")?
        .query_row(params![dataset], |r| r.get(0))
        .optional()?;
    let domain = domain.unwrap_or_else(|| dataset.to_string());
    let (spent, jobs): (i64, i64) = conn
        .prepare_cached(
            "SELECT CAST(COALESCE(SUM(cost_nano_rho), 0) AS BIGINT) AS spent, COUNT(*) AS jobs FROM charges WHERE partner = ? AND domain = ?",
        )?
        .query_row(params![partner, domain], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(BudgetStatus {
        partner: partner.into(),
        dataset: dataset.into(),
        domain,
        total_nano_rho: total.max(0) as u64,
        spent_nano_rho: spent.max(0) as u64,
        jobs: jobs.max(0) as u64,
    })
}
