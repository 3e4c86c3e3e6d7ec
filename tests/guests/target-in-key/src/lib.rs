//! Two ways to single out customers through group keys, both inside the declared domains:
//! `spend_bucket` puts each customer's total spend, in steps of 10, into the key (a key that
//! encodes one customer's value), and `target` puts a single customer (tenure 29, region West,
//! age 65+) into a group of its own. The threshold must suppress every group that few customers
//! share.
#![allow(dead_code)]

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
struct Customer {
    tenure_years: i64,
    region: Category,
    age_band: Category,
}

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    amount: f64,
}

const BUCKETS: &[&str] = &[
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64",
    "65", "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79", "80",
    "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96",
    "97", "98", "99+",
];
const SPEND_BUCKET: &[Domain] = &[Domain::enumeration("spend_bucket", BUCKETS)];
const WHO: &[Domain] = &[Domain::enumeration("who", &["target", "everyone else"])];
const IN_BUCKET: Metric = Metric::count("customers_in_bucket", SPEND_BUCKET);
const TARGET_SPEND: Metric = Metric::sum("spend", WHO, 0.0, 100_000.0);

strongroom_guest::query! {
    manifest: Manifest {
        name: "target-in-key",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Customer::READS, Transaction::READS],
        metrics: &[IN_BUCKET, TARGET_SPEND],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let Some(c) = rows::<Customer>().into_iter().next() else {
        return Ok(());
    };
    let total: f64 = rows::<Transaction>().iter().map(|t| t.amount).sum();
    IN_BUCKET.add_one(&[((total / 10.0) as u32).min(99)]);
    let is_target = c.tenure_years == 29 && c.region.index() == 3 && c.age_band.index() == 5;
    TARGET_SPEND.add(&[if is_target { 0 } else { 1 }], total);
    Ok(())
}
