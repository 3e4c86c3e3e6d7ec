//! The one partner view: everything a partner can observe about one of its jobs, assembled here
//! and nowhere else, from the noised release and facts that do not depend on the data.
//!
//! What a partner sees of a job: what it asked (module, dataset, cost, parameters), when it asked,
//! when the outcome becomes visible (fixed before the run from the policy alone), and after that
//! time the partner's outcome code (`completed`; in table mode `run_failed`; `host_error`), the
//! status (released, held, withheld, failed), the released table and the signed receipt. Never
//! when the run finished, how many units failed or why, fuel, memory, guest output, or any log
//! entry's content. The service answers partners with this view only; the property test in
//! `tests/partner_view.rs` runs hostile modules on neighbouring datasets and checks the view is
//! identical except for the noised numbers.

use crate::params;
use crate::room::db::{OptionalExtension, Row, SqlError};
use serde_json::Value;

use super::{Room, RoomError};

pub use strongroom_api::PartnerJobView;

/// The columns the view reads (job queue `q`, finished jobs `j`).
pub const COLUMNS: &str = "q.job_id, q.partner, q.dataset, q.module_sha256, q.cost, q.parameters, q.state, q.error, q.error_code, \
    q.submitted_at, q.release_at, j.outcome, j.status, j.result_json, j.receipt, j.release_at AS job_release_at";

/// Builds the view from a row of `COLUMNS`, as of `now`. `full` adds the result and receipt.
pub fn from_row(
    r: &Row<'_>,
    now: time::OffsetDateTime,
    full: bool,
) -> Result<PartnerJobView, SqlError> {
    let release_at: Option<String> = match r.get::<_, Option<String>>("job_release_at")? {
        Some(at) => Some(at),
        None => r.get("release_at")?,
    };
    let visible = release_at
        .as_deref()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .is_some_and(|t| now >= t);
    let status: Option<String> = r.get("status")?;
    let finished = visible && status.is_some();
    let queue_state: String = r.get("state")?;
    let error: Option<String> = r.get("error")?;
    // A job refused before its charge never got a release time; its error says why (policy,
    // budget, module), which does not depend on the data. A job that failed after its charge
    // (a host fault) shows as finished once its release time has passed.
    let state = if finished {
        "finished"
    } else if release_at.is_none() && queue_state == "failed" {
        "refused"
    } else if release_at.is_some() && queue_state == "failed" && visible {
        // The host failed after the charge (a crash, a database fault): said only once the
        // release time has passed, so not even a crash tells a partner how long the run took.
        "failed"
    } else if queue_state == "queued" {
        "queued"
    } else {
        "running"
    };
    let released = finished && status.as_deref() == Some("released");
    let result_json: Option<String> = if full && released {
        r.get("result_json")?
    } else {
        None
    };
    Ok(PartnerJobView {
        job_id: r.get("job_id")?,
        dataset: r.get("dataset")?,
        module_sha256: r.get("module_sha256")?,
        cost: r.get("cost")?,
        parameters: stored_parameters(&r.get::<_, String>("parameters")?),
        state: state.to_string(),
        error: match state {
            "refused" | "failed" => error,
            _ => None,
        },
        error_code: match state {
            "refused" => r.get("error_code")?,
            _ => None,
        },
        outcome: if finished { r.get("outcome")? } else { None },
        status: if finished { status } else { None },
        submitted_at: r.get("submitted_at")?,
        release_at,
        result: result_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        result_json,
        receipt: if full && finished {
            r.get("receipt")?
        } else {
            None
        },
    })
}

/// The view of one job of `partner`; `None` when there is no such job or it is not theirs.
pub async fn job(
    room: &Room,
    partner: &str,
    job_id: &str,
) -> Result<Option<PartnerJobView>, RoomError> {
    let now = time::OffsetDateTime::now_utc();
    room.db().read(|conn| {
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM job_queue q LEFT JOIN jobs j ON j.job_id = q.job_id WHERE q.job_id = ? AND q.partner = ?"
        ))?
        .query_row(params![job_id, partner], |r| from_row(r, now, true))
        .optional()
        .map_err(RoomError::from)
    })
}

/// The views of a partner's jobs, newest first (at most 1,000), without results and receipts.
pub async fn jobs(
    room: &Room,
    partner: &str,
    status: Option<&str>,
) -> Result<Vec<PartnerJobView>, RoomError> {
    let now = time::OffsetDateTime::now_utc();
    let views = room.db().read(|conn| {
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM job_queue q LEFT JOIN jobs j ON j.job_id = q.job_id \
             WHERE q.partner = ? ORDER BY q.submitted_at DESC, q.job_id DESC LIMIT 1000"
        ))?
        .query_map(params![partner], |r| from_row(r, now, false))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(RoomError::from)
    })?;
    Ok(views
        .into_iter()
        .filter(|v| status.is_none() || v.status.as_deref() == status)
        .collect())
}

/// Whether a partner may have an inclusion proof of the log entry with this canonical text:
/// only entries about its own requests and jobs.
pub fn entry_is_partners(entry: &str, partner: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(entry) else {
        return false;
    };
    v.get("partner").and_then(Value::as_str) == Some(partner)
        || v.get("actor").and_then(Value::as_str) == Some(&format!("partner:{partner}"))
}

/// A queued job's parameters as the queue stores them (a JSON list of pairs), name to value;
/// none if the text does not parse.
pub fn stored_parameters(text: &str) -> std::collections::BTreeMap<String, String> {
    serde_json::from_str::<Vec<(String, String)>>(text)
        .map(|p| p.into_iter().collect())
        .unwrap_or_default()
}
