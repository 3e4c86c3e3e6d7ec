//! Guest-boundary benchmark: what one isolation unit costs, isolated-mode throughput on the
//! example query, and table-mode throughput on a float column, each beside a native Rust baseline
//! over the same data in the same run.
//!
//! `cargo bench -p strongroom-tests --bench guest_boundary`
//! Sizes: STRONGROOM_BENCH_UNITS (default 20000), STRONGROOM_BENCH_CUSTOMERS (100000),
//! STRONGROOM_BENCH_TABLE_CUSTOMERS (1000000, about 20M transactions).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom::dataset::{ColumnData, Dataset};
use strongroom::guest_boundary::{Outcome, RunContext, RunLimits};
use strongroom_synthetic as synthetic;
use strongroom_tests::{example, prepare, run_in, sandbox};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

fn column<'a>(d: &'a Dataset, table: &str, name: &str) -> &'a ColumnData {
    &d.table(table)
        .and_then(|t| t.column(name))
        .expect("bench column")
        .data
}

/// The example query natively, with the module's bounds: per customer and group, total spend
/// clamped to [0, 3000]; the first 30 purchases counted, each ticket clamped to [0, 300]. Returns
/// the total of the released spend, in cents.
fn native_spend(d: &Dataset) -> i128 {
    let (ColumnData::Category(age), ColumnData::Category(mcc), ColumnData::Float(amount)) = (
        column(d, "customers", "age_band"),
        column(d, "transactions", "mcc_group"),
        column(d, "transactions", "amount"),
    ) else {
        panic!("unexpected column types");
    };
    let customers = d.table("customers").expect("customers");
    let tx = d.table("transactions").expect("transactions");
    let mut totals = std::collections::HashMap::<(u32, u32), (u64, u64, i128, i128)>::new();
    let mut mine: Vec<((u32, u32), f64, u64, i128)> = Vec::new();
    for e in 0..d.entities() as u32 {
        let Some(c) = customers.entity_rows(e).next() else {
            continue;
        };
        mine.clear();
        for r in tx.entity_rows(e) {
            let key = (mcc[r], age[c]);
            let pos = match mine.iter().position(|(k, ..)| *k == key) {
                Some(p) => p,
                None => {
                    mine.push((key, 0.0, 0, 0));
                    mine.len() - 1
                }
            };
            mine[pos].1 += amount[r];
            if mine[pos].2 < 30 {
                mine[pos].2 += 1;
                mine[pos].3 += i128::from(((amount[r] * 100.0).round() as i64).clamp(0, 30_000));
            }
        }
        for &(key, total, n, tickets) in &mine {
            let t = totals.entry(key).or_default();
            t.0 += 1;
            t.1 += n;
            t.2 += i128::from(((total * 100.0).round() as i64).clamp(0, 300_000));
            t.3 += tickets;
        }
    }
    totals.values().map(|t| t.2).sum()
}

fn main() {
    println!("Strongroom guest-boundary benchmark");
    println!(
        "machine: {} cores available",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();

    // 1. One isolation unit: fresh instance, call, teardown (bench-noop).
    let units = env_or("STRONGROOM_BENCH_UNITS", 20_000);
    let tiny = Arc::new(synthetic::generate(units, 0.0, 1).dataset());
    let noop = prepare(&example("bench-noop"));
    let ctx = Arc::new(
        RunContext::new(
            Arc::clone(&tiny),
            noop.module.manifest.clone(),
            noop.module.manifest.mode,
            RunLimits::default(),
            [1; 32],
        )
        .expect("admitted"),
    );
    let deadline = sandbox().unit_deadline_for(&ctx.limits);
    for e in 0..1000.min(units as u32) {
        black_box(
            sandbox()
                .run_unit(&noop, &ctx, e, 1_000_000, deadline)
                .result
                .is_ok(),
        );
    }
    let mut times = Vec::with_capacity(units);
    for e in 0..units as u32 {
        let start = Instant::now();
        let unit = sandbox().run_unit(&noop, &ctx, e, 1_000_000, deadline);
        times.push(start.elapsed());
        assert!(unit.result.is_ok());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "1. isolation unit (instantiate + call + teardown, bench-noop), {units} units, one thread"
    );
    println!(
        "   p50 {}   p99 {}   mean {}   (target p50 <= 10 us)",
        micros(percentile(&times, 0.5)),
        micros(percentile(&times, 0.99)),
        micros(mean)
    );
    println!();

    // 2. Isolated mode on the example query.
    let customers = env_or("STRONGROOM_BENCH_CUSTOMERS", 100_000);
    let bank = Arc::new(synthetic::generate(customers, 20.0, 2018).dataset());
    let rows = bank.table("transactions").map_or(0, |t| t.rows());
    let spend = prepare(&example("spend-by-category"));
    println!("2. isolated mode: spend-by-category on {customers} customers, {rows} transactions");
    let start = Instant::now();
    let native_total = black_box(native_spend(&bank));
    let native = start.elapsed();
    println!(
        "   native Rust loop (same bounds)     {:>8.3} s   {:>12.0} entities/s",
        native.as_secs_f64(),
        customers as f64 / native.as_secs_f64()
    );
    for threads in [1, 2] {
        let start = Instant::now();
        let report = run_in(
            &spend,
            &bank,
            RunLimits::default(),
            spend.module.manifest.mode,
            threads,
        );
        let elapsed = start.elapsed();
        assert_eq!(report.outcome, Outcome::Completed);
        let total: i128 = report.aggregate.as_ref().expect("aggregate").metrics[0]
            .rows
            .iter()
            .map(|r| r.sum_fixed)
            .sum();
        assert_eq!(total, native_total, "sandboxed and native totals agree");
        println!(
            "   sandboxed, {threads} thread(s)              {:>8.3} s   {:>12.0} entities/s   ({:.1}x native time)",
            elapsed.as_secs_f64(),
            customers as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() / native.as_secs_f64()
        );
    }
    println!("   (target: >= 100,000 entities/s on one core)");
    println!();
    drop(bank);

    // 3. Table mode: sum of a float column.
    let table_customers = env_or("STRONGROOM_BENCH_TABLE_CUSTOMERS", 1_000_000);
    let big = Arc::new(synthetic::generate(table_customers, 20.0, 7).dataset());
    let ColumnData::Float(amounts) = column(&big, "transactions", "amount") else {
        panic!("amount is float")
    };
    let n = amounts.len();
    println!("3. table mode: sum of transactions.amount over {n} values");
    let mut native_best = Duration::MAX;
    let mut native_sum = 0.0;
    for _ in 0..5 {
        let start = Instant::now();
        native_sum = black_box(amounts.iter().sum::<f64>());
        native_best = native_best.min(start.elapsed());
    }
    let column_sum = prepare(&example("column-sum"));
    let mut sandboxed_best = Duration::MAX;
    let mut sandboxed_sum = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let report = run_in(
            &column_sum,
            &big,
            RunLimits::default(),
            column_sum.module.manifest.mode,
            1,
        );
        sandboxed_best = sandboxed_best.min(start.elapsed());
        assert_eq!(report.outcome, Outcome::Completed);
        sandboxed_sum = report.aggregate.expect("aggregate").metrics[0].rows[0].sum_fixed;
    }
    assert!(
        ((sandboxed_sum as f64 / 100.0) - native_sum).abs() / native_sum < 1e-9,
        "sums agree"
    );
    let rate = |d: Duration| n as f64 / d.as_secs_f64() / 1e6;
    println!(
        "   native Rust loop     {:>8.1} ms   {:>8.0} M values/s",
        native_best.as_secs_f64() * 1e3,
        rate(native_best)
    );
    println!(
        "   sandboxed (1 core)   {:>8.1} ms   {:>8.0} M values/s   = {:.0}% of native speed (target >= 50%)",
        sandboxed_best.as_secs_f64() * 1e3,
        rate(sandboxed_best),
        100.0 * native_best.as_secs_f64() / sandboxed_best.as_secs_f64()
    );
    println!(
        "   (best of 5 runs each; the sandboxed time includes instantiation and batch transfer)"
    );
}
