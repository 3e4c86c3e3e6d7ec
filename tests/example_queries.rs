//! The example queries, checked against the same computation written natively in Rust over the
//! same plaintext, with the same bounding rules. Exact fixed-point sums make the comparison exact.

use std::collections::BTreeMap;

use strongroom::dataset::csv_input::load_csv_tables;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::dataset::{ColumnData, Dataset, synthetic};
use strongroom::guest_boundary::manifest::Mode;
use strongroom::guest_boundary::{Outcome, RunLimits};
use strongroom_tests::{example, prepare, run, run_in, small_bank};

fn category(d: &Dataset, table: &str, column: &str) -> Vec<u32> {
    match &d
        .table(table)
        .and_then(|t| t.column(column))
        .map(|c| &c.data)
    {
        Some(ColumnData::Category(v)) => v.clone(),
        other => panic!("{table}.{column} is not a category column: {other:?}"),
    }
}

fn floats(d: &Dataset, table: &str, column: &str) -> Vec<f64> {
    match &d
        .table(table)
        .and_then(|t| t.column(column))
        .map(|c| &c.data)
    {
        Some(ColumnData::Float(v)) => v.clone(),
        other => panic!("{table}.{column} is not a float column: {other:?}"),
    }
}

/// Native spend by (mcc_group, age_band): per customer at most 50 purchases per group, at most 16
/// groups, amounts clamped to [0, 5000], in cents. Returns key -> (entities, purchases, cents).
fn native_spend(d: &Dataset) -> BTreeMap<(u32, u32), (u64, u64, i128)> {
    let customers = d.table("customers").expect("customers");
    let tx = d.table("transactions").expect("transactions");
    let age = category(d, "customers", "age_band");
    let mcc = category(d, "transactions", "mcc_group");
    let amount = floats(d, "transactions", "amount");
    let mut out: BTreeMap<(u32, u32), (u64, u64, i128)> = BTreeMap::new();
    for e in 0..d.entities() as u32 {
        let Some(c) = customers.entity_rows(e).next() else {
            continue;
        };
        let mut mine: Vec<((u32, u32), u64, i128)> = Vec::new();
        for r in tx.entity_rows(e) {
            let key = (mcc[r], age[c]);
            let pos = match mine.iter().position(|(k, _, _)| *k == key) {
                Some(p) => p,
                None if mine.len() < 16 => {
                    mine.push((key, 0, 0));
                    mine.len() - 1
                }
                None => continue,
            };
            if mine[pos].1 >= 50 {
                continue;
            }
            mine[pos].1 += 1;
            mine[pos].2 += i128::from(((amount[r] * 100.0).round() as i64).clamp(0, 500_000));
        }
        for (key, n, cents) in mine {
            let acc = out.entry(key).or_default();
            acc.0 += 1;
            acc.1 += n;
            acc.2 += cents;
        }
    }
    out
}

#[test]
fn spend_by_category_matches_a_native_computation_exactly() {
    let data = small_bank(300);
    let module = prepare(&example("spend-by-category"));
    let report = run(&module, &data, RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.detail);
    let aggregate = report.aggregate.expect("aggregate");
    let expected = native_spend(&data);
    assert!(!expected.is_empty());
    for (metric, result) in aggregate.metrics.iter().enumerate() {
        assert_eq!(result.rows.len(), expected.len(), "metric {}", result.name);
        for row in &result.rows {
            let (entities, purchases, cents) = expected[&(row.key[0], row.key[1])];
            assert_eq!(row.entities, entities, "entities of {:?}", row.key);
            assert_eq!(row.contributions, purchases, "purchases of {:?}", row.key);
            match metric {
                0 | 2 => assert_eq!(row.sum_fixed, cents, "spend of {:?}", row.key),
                _ => assert_eq!(row.sum_fixed, 0, "counts carry no sum"),
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_threads_or_seed() {
    let data = small_bank(200);
    let module = prepare(&example("spend-by-category"));
    let one = run_in(&module, &data, RunLimits::default(), Mode::Isolated, 1);
    let two = run_in(&module, &data, RunLimits::default(), Mode::Isolated, 2);
    assert_eq!(one.aggregate, two.aggregate);
    assert!(one.aggregate.is_some());
}

#[test]
fn bounds_are_applied_to_each_entity() {
    // One customer with 80 purchases of 9,000 in one group: 50 kept, each clamped to 5,000.
    let mut bank = synthetic::generate(3, 0.0, 1);
    for _ in 0..80 {
        bank.tx_customer.push(0);
        bank.tx_date.push(20_100);
        bank.tx_mcc_group.push(2);
        bank.tx_amount.push(9_000.0);
        bank.tx_online.push(false);
    }
    let data = std::sync::Arc::new(bank.dataset());
    let module = prepare(&example("spend-by-category"));
    let report = run(&module, &data, RunLimits::default());
    let aggregate = report.aggregate.expect("aggregate");
    let spend = &aggregate.metrics[0];
    assert_eq!(spend.rows.len(), 1);
    assert_eq!(spend.rows[0].contributions, 50);
    assert_eq!(spend.rows[0].sum_fixed, 50 * 500_000);
    // Each of the three metrics clamps the 50 values it kept (the count has nothing to clamp) and
    // drops 30.
    assert_eq!(aggregate.stats.clamped, 100);
    assert_eq!(aggregate.stats.dropped_over_contribution_limit, 90);
}

#[test]
fn table_mode_column_sum_matches_a_native_sum() {
    let data = small_bank(500);
    let module = prepare(&example("column-sum"));
    let report = run(&module, &data, RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.detail);
    let native: f64 = floats(&data, "transactions", "amount").iter().sum();
    let got = report.aggregate.expect("aggregate").metrics[0].rows[0].sum_fixed;
    assert_eq!(got, (native * 100.0).round() as i128);
}

#[test]
fn a_module_cannot_run_in_a_mode_it_was_not_written_for() {
    let data = small_bank(5);
    let module = prepare(&example("spend-by-category"));
    let err = strongroom::guest_boundary::RunContext::new(
        data,
        module.module.manifest.clone(),
        Mode::Table,
        RunLimits::default(),
        [0; 32],
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("declares isolated mode"), "{err}");
}

#[test]
fn csv_input_gives_the_same_result_as_the_in_memory_bank() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = synthetic::generate(150, 20.0, 9);
    bank.write_csv(dir.path()).expect("csv written");
    let schema = DatasetSchema::load(&dir.path().join("schema.toml")).expect("schema loads");
    let tables = vec![
        ("customers".to_string(), dir.path().join("customers.csv")),
        (
            "transactions".to_string(),
            dir.path().join("transactions.csv"),
        ),
    ];
    let (from_csv, _) = load_csv_tables(&tables, Some(&schema), "customer_id").expect("csv loads");
    let (inferred, _) =
        load_csv_tables(&tables, None, "customer_id").expect("csv loads without schema");
    let module = prepare(&example("spend-by-category"));
    let a = run(
        &module,
        &std::sync::Arc::new(from_csv),
        RunLimits::default(),
    );
    let b = run(
        &module,
        &std::sync::Arc::new(bank.dataset()),
        RunLimits::default(),
    );
    assert_eq!(a.aggregate, b.aggregate);
    // Inferred dictionaries are sorted, so keys differ, but totals agree.
    let c = run(
        &module,
        &std::sync::Arc::new(inferred),
        RunLimits::default(),
    );
    let total = |r: &strongroom::guest_boundary::RunReport| -> i128 {
        r.aggregate.as_ref().expect("aggregate").metrics[0]
            .rows
            .iter()
            .map(|g| g.sum_fixed)
            .sum()
    };
    assert_eq!(total(&a), total(&c));
}

#[test]
fn bad_csv_input_names_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = synthetic::generate(5, 3.0, 9);
    bank.write_csv(dir.path()).expect("csv written");
    let schema = DatasetSchema::load(&dir.path().join("schema.toml")).expect("schema loads");
    let path = dir.path().join("transactions.csv");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("C00000001,2025-02-30,Fuel,12.00,false\n");
    std::fs::write(&path, text).expect("write");
    let tables = vec![
        ("customers".to_string(), dir.path().join("customers.csv")),
        ("transactions".to_string(), path),
    ];
    let err = load_csv_tables(&tables, Some(&schema), "customer_id").expect_err("bad date refused");
    let msg = err.to_string();
    assert!(
        msg.contains("transactions.csv")
            && msg.contains("line")
            && msg.contains("'date'")
            && msg.contains("2025-02-30"),
        "{msg}"
    );
}
