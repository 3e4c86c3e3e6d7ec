//! Example query 3, the Messenger question: among the bank's customers who are also the
//! partner's users, how are average monthly balances distributed, and where do they spend?
//!
//! The partner sealed its list of users' emails and phone numbers to the room; the room matched
//! it against the bank's identifiers in the host and gives this module only a per-customer
//! boolean, `customers.in_partner_audience`. Isolated mode, one customer per fresh instance.
//! A customer outside the audience contributes nothing. A matched customer contributes:
//! - `balance_band`: 1 under their average monthly balance band (one group);
//! - `spend`: their year's card spend per merchant category group (up to 10 groups, each
//!   clamped to [0, 5,000]); the partner ranks categories by it;
//! - `spenders`: 1 per merchant category group they spent in.
//!
//! How many customers matched leaves only as these noisy, thresholded counts.

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
struct Customer {
    in_partner_audience: bool,
    avg_monthly_balance: f64,
}

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    mcc_group: Category,
    amount: f64,
}

/// Balance bands, a public enumeration declared in the manifest.
const BANDS: &[&str] = &[
    "under $1k",
    "$1k-5k",
    "$5k-25k",
    "$25k-100k",
    "$100k and over",
];
const BY_BAND: &[Domain] = &[Domain::enumeration("balance_band", BANDS)];
const BY_CATEGORY: &[Domain] = &[Domain::column("transactions", "mcc_group")];

/// Matched customers per balance band.
const BALANCE_BAND: Metric = Metric::count("balance_band", BY_BAND);
/// A matched customer's yearly spend in a category, at most 5,000.
const SPEND: Metric = Metric::sum("spend", BY_CATEGORY, 0.0, 5_000.0);
/// Matched customers who spent in a category.
const SPENDERS: Metric = Metric::count("spenders", BY_CATEGORY);

strongroom_guest::query! {
    manifest: Manifest {
        name: "messenger-audience",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Customer::READS, Transaction::READS],
        metrics: &[BALANCE_BAND, SPEND, SPENDERS],
        max_groups_per_entity: 10,
    },
    run: run,
}

/// The band of an average monthly balance.
fn band(balance: f64) -> u32 {
    match balance {
        b if b < 1_000.0 => 0,
        b if b < 5_000.0 => 1,
        b if b < 25_000.0 => 2,
        b if b < 100_000.0 => 3,
        _ => 4,
    }
}

fn run() -> Result<(), QueryError> {
    let Some(customer) = rows::<Customer>().into_iter().next() else {
        return Ok(());
    };
    if !customer.in_partner_audience {
        return Ok(());
    }
    BALANCE_BAND.add_one(&[band(customer.avg_monthly_balance)]);
    let mut spend: Vec<(u32, f64)> = Vec::new();
    for tx in rows::<Transaction>() {
        let group = tx.mcc_group.index();
        match spend.iter_mut().find(|(g, _)| *g == group) {
            Some((_, total)) => *total += tx.amount,
            None => spend.push((group, tx.amount)),
        }
    }
    for (group, total) in spend {
        SPEND.add(&[group], total);
        SPENDERS.add_one(&[group]);
    }
    Ok(())
}
