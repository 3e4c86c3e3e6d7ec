//! Example query 2: the share of customers with a fraud alert in the last quarter, by region.
//!
//! Isolated mode, one customer per fresh instance. Each customer contributes 1 or 0 to the mean
//! `share_with_alert` under their region, and is one of the region's `customers` (a distinct
//! metric: one number per region, where a count of one per customer would release the same
//! number twice and pay for both). A customer reaches one group and moves each number by at most
//! 1, so modest noise already hides any single customer.
//!
//! Parameter `min_alerts` (default 1): how many alerts in the quarter count as "with an alert",
//! e.g. `--param min_alerts=2` for repeat alerts.

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
struct Customer {
    region: Category,
    fraud_alerts_last_quarter: i64,
}

const BY_REGION: &[Domain] = &[Domain::column("customers", "region")];
/// Share of customers with at least one alert (mean of 0/1), to four decimals.
const SHARE_WITH_ALERT: Metric = Metric::mean("share_with_alert", BY_REGION, 0.0, 1.0).decimals(4);
/// Customers per region.
const CUSTOMERS: Metric = Metric::distinct("customers", BY_REGION);

strongroom_guest::query! {
    manifest: Manifest {
        name: "fraud-alerts-by-region",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Customer::READS],
        metrics: &[SHARE_WITH_ALERT, CUSTOMERS],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let Some(customer) = rows::<Customer>().into_iter().next() else {
        return Ok(());
    };
    let min_alerts = match schema::parameter("min_alerts") {
        None => 1,
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| QueryError("min_alerts must be a whole number".into()))?,
    };
    let region = customer.region.index();
    let alerted = if customer.fraud_alerts_last_quarter >= min_alerts {
        1.0
    } else {
        0.0
    };
    contribute!(SHARE_WITH_ALERT, [region], alerted);
    contribute!(CUSTOMERS, [region]);
    Ok(())
}
