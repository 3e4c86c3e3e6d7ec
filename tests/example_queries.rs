//! The example queries, checked against the same computation written natively in Rust over the
//! same plaintext, with the same bounding rules. Exact fixed-point sums make the comparison exact.

use std::collections::BTreeMap;
use std::sync::Arc;

use strongroom::dataset::Dataset;
use strongroom::dataset::csv_input::load_csv_tables;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::executor::{Executor, HostFault, Partial, Partition};
use strongroom::guest_boundary::{Outcome, RunContext, RunLimits};
use strongroom_contract::manifest::Mode;
use strongroom_synthetic as synthetic;
use strongroom_tests::{
    bools, categories, example, floats, ints, prepare, run, run_in, sandbox, small_bank,
};

/// Exact per-group results of the native computation: entities, kept purchases, spend cents,
/// ticket cents.
#[derive(Default, Clone, Copy, Debug)]
struct Expected {
    entities: u64,
    purchases: u64,
    spend_cents: i128,
    ticket_cents: i128,
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// Native spend by (mcc_group, age_band) with the module's bounds: per customer and group, total
/// spend clamped to [0, 3000]; the first 30 purchases counted, each amount clamped to [0, 300].
fn native_spend(d: &Dataset) -> BTreeMap<(u32, u32), Expected> {
    let customers = d.table("customers").expect("customers");
    let tx = d.table("transactions").expect("transactions");
    let age = categories(d, "customers", "age_band");
    let mcc = categories(d, "transactions", "mcc_group");
    let amount = floats(d, "transactions", "amount");
    let mut out: BTreeMap<(u32, u32), Expected> = BTreeMap::new();
    for e in 0..d.entities() as u32 {
        let Some(c) = customers.entity_rows(e).next() else {
            continue;
        };
        let mut mine: BTreeMap<(u32, u32), (f64, u64, i128)> = BTreeMap::new();
        for r in tx.entity_rows(e) {
            let cell = mine.entry((mcc[r], age[c])).or_default();
            cell.0 += amount[r];
            if cell.1 < 30 {
                cell.1 += 1;
                cell.2 += i128::from(cents(amount[r]).clamp(0, 30_000));
            }
        }
        for (key, (total, n, tickets)) in mine {
            let acc = out.entry(key).or_default();
            acc.entities += 1;
            acc.purchases += n;
            acc.spend_cents += i128::from(cents(total).clamp(0, 300_000));
            acc.ticket_cents += tickets;
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
            let want = expected[&(row.key[0], row.key[1])];
            assert_eq!(row.entities, want.entities, "entities of {:?}", row.key);
            match metric {
                0 => assert_eq!(row.sum_fixed, want.spend_cents, "spend of {:?}", row.key),
                1 => assert_eq!(
                    (row.contributions, row.sum_fixed),
                    (want.purchases, 0),
                    "purchases of {:?}",
                    row.key
                ),
                _ => {
                    assert_eq!(
                        row.contributions, want.purchases,
                        "tickets of {:?}",
                        row.key
                    );
                    assert_eq!(
                        row.sum_fixed, want.ticket_cents,
                        "ticket sum of {:?}",
                        row.key
                    );
                }
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
    // One customer with 80 purchases of 9,000 in one group: the spend total is clamped to 3,000;
    // 30 purchases are kept, each ticket clamped to 300.
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
    assert_eq!(
        (spend.rows[0].contributions, spend.rows[0].sum_fixed),
        (1, 300_000)
    );
    let tickets = &aggregate.metrics[2];
    assert_eq!(
        (tickets.rows[0].contributions, tickets.rows[0].sum_fixed),
        (30, 30 * 30_000)
    );
    assert_eq!(aggregate.metrics[1].rows[0].contributions, 30);
    // The spend total and 30 tickets were clamped; 50 purchases and 50 tickets were dropped.
    assert_eq!(aggregate.stats.clamped, 31);
    assert_eq!(aggregate.stats.dropped_over_contribution_limit, 100);
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

#[test]
fn the_table_mode_analyst_query_joins_by_entity_and_matches_a_native_computation() {
    let data = small_bank(400);
    let module = prepare(&example("analyst-spend-by-region"));
    let report = run(&module, &data, RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.detail);
    let aggregate = report.aggregate.expect("aggregate");
    // Natively: per customer, total spend in row order, in cents, clamped to [0, 20,000].
    let region = categories(&data, "customers", "region");
    let amount = floats(&data, "transactions", "amount");
    let customers = data.table("customers").expect("customers");
    let tx = data.table("transactions").expect("transactions");
    let mut expected: BTreeMap<u32, (u64, i128)> = BTreeMap::new();
    for e in 0..data.entities() as u32 {
        let Some(c) = customers.entity_rows(e).next() else {
            continue;
        };
        let total: f64 = tx.entity_rows(e).map(|r| amount[r]).sum();
        let acc = expected.entry(region[c]).or_default();
        acc.0 += 1;
        acc.1 += i128::from(((total * 100.0).round() as i64).clamp(0, 2_000_000));
    }
    let (spend, count) = (&aggregate.metrics[0], &aggregate.metrics[1]);
    assert_eq!(spend.rows.len(), expected.len());
    for row in &spend.rows {
        let (customers, cents) = expected[&row.key[0]];
        assert_eq!(
            (row.entities, row.sum_fixed),
            (customers, cents),
            "region {}",
            row.key[0]
        );
    }
    for row in &count.rows {
        assert_eq!(
            (row.entities, row.contributions),
            (expected[&row.key[0]].0, expected[&row.key[0]].0)
        );
    }
    assert_eq!(
        aggregate.entities, 400,
        "every customer contributed once, attributed by row"
    );
}

#[test]
fn fraud_alert_share_by_region_matches_a_native_computation() {
    let data = small_bank(500);
    let module = prepare(&example("fraud-alerts-by-region"));
    let report = run(&module, &data, RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.detail);
    let aggregate = report.aggregate.expect("aggregate");
    let region = categories(&data, "customers", "region");
    let alerts = ints(&data, "customers", "fraud_alerts_last_quarter");
    let mut expected: BTreeMap<u32, (u64, i128)> = BTreeMap::new();
    for (r, a) in region.iter().zip(&alerts) {
        let acc = expected.entry(*r).or_default();
        acc.0 += 1;
        acc.1 += if *a > 0 { 10_000 } else { 0 };
    }
    assert!(
        expected.values().any(|(_, with)| *with > 0),
        "the synthetic bank has some alerts"
    );
    let share = &aggregate.metrics[0];
    for row in &share.rows {
        assert_eq!(
            (row.contributions, row.sum_fixed),
            expected[&row.key[0]],
            "region {}",
            row.key[0]
        );
    }
    assert_eq!(share.rows.len(), expected.len());
    // `customers` is a distinct metric: each region's customers, once each, and no value.
    let customers = &aggregate.metrics[1];
    assert_eq!(
        customers.kind,
        strongroom_contract::manifest::MetricKind::Distinct
    );
    for row in &customers.rows {
        let region_customers = expected[&row.key[0]].0;
        assert_eq!(
            (row.entities, row.contributions, row.sum_fixed),
            (region_customers, region_customers, 0)
        );
        assert_eq!(customers.value(row), region_customers as f64);
    }
}

/// The bank, with the partner's list matched in the host, and the matched customers' ordinals.
fn bank_with_audience(customers: usize) -> (Arc<Dataset>, Vec<bool>) {
    use strongroom::dataset::audience::AudienceList;
    let bank = synthetic::generate(customers, 20.0, 42);
    let users = synthetic::partner_users(&bank, customers / 5, 42);
    let list = AudienceList::from_values([
        ("email", users.email.iter().map(String::as_str).collect()),
        ("phone", users.phone.iter().map(String::as_str).collect()),
    ]);
    let mut dataset = bank.dataset();
    list.attach(&mut dataset).expect("attach");
    let matched = bools(&dataset, "customers", "in_partner_audience");
    (Arc::new(dataset), matched)
}

#[test]
fn the_messenger_question_counts_only_matched_customers_and_matches_a_native_computation() {
    let (data, matched) = bank_with_audience(800);
    let n_matched = matched.iter().filter(|&&m| m).count() as u64;
    assert!(n_matched > 100 && n_matched < 700, "{n_matched}");
    let module = prepare(&example("messenger-audience"));
    let report = run(&module, &data, RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.detail);
    let aggregate = report.aggregate.expect("aggregate");

    let balance = floats(&data, "customers", "avg_monthly_balance");
    let mcc = categories(&data, "transactions", "mcc_group");
    let amount = floats(&data, "transactions", "amount");
    let tx = data.table("transactions").expect("transactions");
    let band = |b: f64| match b {
        b if b < 1_000.0 => 0u32,
        b if b < 5_000.0 => 1,
        b if b < 25_000.0 => 2,
        b if b < 100_000.0 => 3,
        _ => 4,
    };
    let mut bands: BTreeMap<u32, u64> = BTreeMap::new();
    let mut spend: BTreeMap<u32, (u64, i128)> = BTreeMap::new();
    for e in 0..data.entities() {
        if !matched[e] {
            continue;
        }
        *bands.entry(band(balance[e])).or_default() += 1;
        let mut mine: BTreeMap<u32, f64> = BTreeMap::new();
        for r in tx.entity_rows(e as u32) {
            *mine.entry(mcc[r]).or_default() += amount[r];
        }
        for (g, total) in mine {
            let acc = spend.entry(g).or_default();
            acc.0 += 1;
            acc.1 += i128::from(cents(total).clamp(0, 500_000));
        }
    }
    let by_name = |name: &str| {
        aggregate
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("metric {name}"))
    };
    let got_bands: BTreeMap<u32, u64> = by_name("balance_band")
        .rows
        .iter()
        .map(|r| (r.key[0], r.contributions))
        .collect();
    assert_eq!(got_bands, bands);
    assert_eq!(got_bands.values().sum::<u64>(), n_matched, "one band each");
    let got_spend: BTreeMap<u32, (u64, i128)> = by_name("spend")
        .rows
        .iter()
        .map(|r| (r.key[0], (r.entities, r.sum_fixed)))
        .collect();
    assert_eq!(got_spend, spend);
    let spenders: BTreeMap<u32, u64> = by_name("spenders")
        .rows
        .iter()
        .map(|r| (r.key[0], r.contributions))
        .collect();
    assert_eq!(
        spenders,
        spend
            .iter()
            .map(|(g, (n, _))| (*g, *n))
            .collect::<BTreeMap<_, _>>()
    );
}

#[test]
fn the_audience_column_exists_only_when_a_list_was_matched() {
    use strongroom::guest_boundary::RunContext;
    let module = prepare(&example("messenger-audience"));
    let err = RunContext::new(
        small_bank(50),
        module.module.manifest.clone(),
        Mode::Isolated,
        RunLimits::default(),
        [1; 32],
    )
    .err()
    .expect("refused without a list");
    assert!(
        err.to_string()
            .contains("exists only in a job that matches a partner's audience list"),
        "{err}"
    );
}

#[test]
fn query_one_in_table_mode_gives_exactly_the_isolated_aggregates() {
    let data = small_bank(400);
    let isolated = run(
        &prepare(&example("spend-by-category")),
        &data,
        RunLimits::default(),
    );
    let table = run(
        &prepare(&example("spend-by-category-table")),
        &data,
        RunLimits::default(),
    );
    assert_eq!(table.outcome, Outcome::Completed, "{:?}", table.detail);
    let (a, b) = (
        isolated.aggregate.expect("isolated"),
        table.aggregate.expect("table"),
    );
    assert_eq!(a.metrics.len(), b.metrics.len());
    for (x, y) in a.metrics.iter().zip(&b.metrics) {
        assert!(!x.rows.is_empty());
        assert_eq!(x.rows, y.rows, "metric {}", x.name);
    }
}

#[test]
fn parameters_reach_the_module_and_bad_ones_are_refused() {
    use strongroom::guest_boundary::RunContext;
    let data = small_bank(500);
    let module = prepare(&example("fraud-alerts-by-region"));
    let run_with = |params: &[(&str, &str)]| {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ctx = RunContext::new(
            Arc::clone(&data),
            module.module.manifest.clone(),
            Mode::Isolated,
            RunLimits::default(),
            [3; 32],
        )
        .expect("admitted")
        .with_parameters(&params)
        .expect("valid parameters");
        strongroom_tests::sandbox().run(&module, Arc::new(ctx), 2)
    };
    let alerts = ints(&data, "customers", "fraud_alerts_last_quarter");
    let share_sum = |report: strongroom::guest_boundary::RunReport| -> i128 {
        let aggregate = report.aggregate.expect("aggregate");
        aggregate.metrics[0].rows.iter().map(|r| r.sum_fixed).sum()
    };
    // Default: at least one alert; with min_alerts=2, at least two. Shares in 1/10,000.
    let at_least = |n: i64| alerts.iter().filter(|&&a| a >= n).count() as i128 * 10_000;
    assert_eq!(share_sum(run_with(&[])), at_least(1));
    assert_eq!(share_sum(run_with(&[("min_alerts", "2")])), at_least(2));
    assert!(
        at_least(2) < at_least(1),
        "the parameter changes the answer"
    );
    // A value the module cannot use fails every unit with a guest error (units fail alone, so
    // the run completes with nothing contributed; the bank sees why).
    let bad = run_with(&[("min_alerts", "many")]);
    assert_eq!(bad.outcome, Outcome::GuestError);
    assert_eq!(bad.failed_unit_count(), bad.units);
    assert_eq!(bad.aggregate.expect("aggregate").entities, 0);
    // The room refuses malformed parameters before anything runs.
    let ctx = || {
        RunContext::new(
            Arc::clone(&data),
            module.module.manifest.clone(),
            Mode::Isolated,
            RunLimits::default(),
            [3; 32],
        )
        .expect("admitted")
    };
    for bad in [
        vec![("Min".to_string(), "1".to_string())],
        vec![("a".to_string(), "x".repeat(300))],
        vec![
            ("a".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
        ],
        (0..40)
            .map(|i| (format!("p{i}"), "1".to_string()))
            .collect(),
    ] {
        assert!(ctx().with_parameters(&bad).is_err(), "{bad:?}");
    }
}

/// Runs the partitions last to first on the calling thread, each partial returned on its own:
/// what a run on other machines would hand back, in whatever order they finished.
struct Reversed;

impl Executor for Reversed {
    fn execute(
        &self,
        partitions: &[Partition],
        run: &(dyn Fn(Partition) -> Partial + Sync),
        _empty: &(dyn Fn() -> Partial + Sync),
    ) -> Result<Vec<Partial>, HostFault> {
        Ok(partitions.iter().rev().map(|&p| run(p)).collect())
    }
}

#[test]
fn results_do_not_depend_on_where_or_in_what_order_partitions_run() {
    let data = small_bank(300);
    let module = prepare(&example("spend-by-category"));
    let pooled = run_in(&module, &data, RunLimits::default(), Mode::Isolated, 2);
    let ctx = RunContext::new(
        Arc::clone(&data),
        module.module.manifest.clone(),
        Mode::Isolated,
        RunLimits::default(),
        [7; 32],
    )
    .expect("run context");
    let reversed = sandbox().run_on(&module, Arc::new(ctx), &Reversed);
    assert!(pooled.aggregate.is_some());
    assert_eq!(pooled.aggregate, reversed.aggregate);
    assert_eq!(pooled.units, 300);
    assert_eq!(reversed.units, 300);
    assert_eq!(pooled.fuel_consumed, reversed.fuel_consumed);
    assert_eq!(pooled.failed_units, reversed.failed_units);
}

/// Runs `module` on `data` in isolated mode, batched or not, on two threads.
fn run_batched(
    module: &strongroom::guest_boundary::PreparedModule,
    data: &Arc<Dataset>,
    batched: bool,
) -> strongroom::guest_boundary::RunReport {
    let ctx = RunContext::new(
        Arc::clone(data),
        module.module.manifest.clone(),
        Mode::Isolated,
        RunLimits::default(),
        [7; 32],
    )
    .expect("admitted")
    .with_batched(batched);
    assert_eq!(ctx.batched, batched);
    strongroom_tests::sandbox().run(module, Arc::new(ctx), 2)
}

#[test]
fn batched_runs_give_the_isolated_aggregates_exactly() {
    let data = small_bank(500);
    for name in ["spend-by-category", "fraud-alerts-by-region"] {
        let module = prepare(&example(name));
        let isolated = run_batched(&module, &data, false);
        let batched = run_batched(&module, &data, true);
        assert_eq!(isolated.outcome, Outcome::Completed, "{name}");
        assert_eq!(batched.outcome, isolated.outcome, "{name}");
        assert_eq!(batched.units, 500, "{name}");
        assert!(batched.aggregate.is_some(), "{name}");
        assert_eq!(batched.aggregate, isolated.aggregate, "{name}");
    }
}

#[test]
fn a_failing_customer_in_a_batch_drops_its_own_contributions_alone() {
    // Customers with tenure 7 fail their unit; in a batch, the batch runs again one customer
    // per instance, so the same customers fail, and the others all count.
    let data = small_bank(500);
    let module = prepare(&strongroom_tests::hostile("fail-on-target"));
    let isolated = run_batched(&module, &data, false);
    let batched = run_batched(&module, &data, true);
    let failed = isolated.failed_unit_count();
    assert!(failed > 0 && failed < 500, "some customers fail: {failed}");
    assert_eq!(batched.failed_unit_count(), failed);
    assert_eq!(batched.units, isolated.units);
    assert_eq!(batched.aggregate, isolated.aggregate);
}

#[test]
fn batched_runs_share_one_instance_which_is_why_only_reviewed_modules_get_them() {
    // A module that keeps the first customer's value in a global: one customer per fresh
    // instance, each customer contributes its own; batched, the first of each batch speaks for
    // the rest. This is the state a bank's review must rule out before it lets a module batch.
    let data = small_bank(300);
    let module = prepare(&strongroom_tests::hostile("stash-first-value"));
    let isolated = run_batched(&module, &data, false);
    let batched = run_batched(&module, &data, true);
    assert_eq!(isolated.outcome, Outcome::Completed);
    assert_eq!(batched.outcome, Outcome::Completed);
    assert_ne!(
        batched.aggregate, isolated.aggregate,
        "batched customers share an instance"
    );
}

/// The initial linear memory of every core module in a component, in bytes.
fn initial_memory_bytes(component: &[u8]) -> u64 {
    let mut total = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        if let Ok(wasmparser::Payload::MemorySection(memories)) = payload {
            for memory in memories {
                total += memory.expect("memory type").initial * 65_536;
            }
        }
    }
    total
}

#[test]
fn an_isolation_unit_never_grows_its_memory() {
    // The SDK's allocator serves a customer's rows and cells from a region of the module's
    // initial memory, so no unit pays for growing it (and for shrinking it back when the slot
    // is reset): not even customers with thousands of card transactions, whose rows outgrow the
    // few kilobytes the standard allocator finds free at the start.
    let bytes = example("spend-by-category");
    let initial = initial_memory_bytes(&bytes);
    assert!(initial > 0, "the module declares a memory");
    let module = prepare(&bytes);
    let data = Arc::new(synthetic::generate(6, 3_000.0, 11).dataset());
    let ctx = Arc::new(
        RunContext::new(
            Arc::clone(&data),
            module.module.manifest.clone(),
            Mode::Isolated,
            RunLimits::default(),
            [3; 32],
        )
        .expect("run context"),
    );
    let transactions = data.table("transactions").expect("transactions");
    let sandbox = sandbox();
    for entity in 0..6 {
        let rows = transactions.entity_rows(entity).len();
        assert!(rows > 1_000, "entity {entity} has {rows} transactions");
        let deadline = sandbox.unit_deadline_for(&RunLimits::default());
        let unit = sandbox.run_unit(
            &module,
            &ctx,
            entity,
            RunLimits::default().fuel_per_entity,
            deadline,
        );
        assert!(unit.result.is_ok(), "entity {entity} ran");
        assert_eq!(unit.memory_bytes, initial, "entity {entity}, {rows} rows");
    }
}
