//! SQL: a corpus of queries, each compiled by the room, run by the SQL engine in the sandbox
//! with no noise, and compared exactly with DuckDB running the same question in plain SQL (the
//! bounds written out) on the same CSV files; the demo's questions in SQL against the Rust
//! modules; and SQL jobs in a room (policy, templates, the log's and the receipt's hashes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use strongroom::dataset::Dataset;
use strongroom::dataset::csv_input::load_csv_tables;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::{PreparedModule, RunContext, RunLimits};
use strongroom::room::jobs::domain_labels;
use strongroom_contract::manifest::{Manifest, MetricKind, Mode};
use strongroom_tests::{example, prepare, repo_root, sandbox};

/// How DuckDB computes one released metric from the case's rows (see [`duckdb_query`]).
#[derive(Clone, Copy, Debug)]
enum M {
    /// SUM(v, contribution_bounds_per_group => (lo, hi)).
    SumGroup(f64, f64),
    /// AVG(v, contribution_bounds_per_group => (lo, hi)).
    AvgGroup(f64, f64),
    /// SUM(v, contribution_bounds_per_row => (lo, hi), max_rows_per_group => n).
    SumRow(f64, f64, u32),
    /// AVG(v, contribution_bounds_per_row => (lo, hi), max_rows_per_group => n).
    AvgRow(f64, f64, u32),
    /// COUNT(v or *, contribution_bounds_per_group => (0, n)): rows where v is not NULL.
    Count(u32),
    /// COUNT(DISTINCT customer_id).
    Distinct,
}

/// One question: the room's SQL, and for DuckDB a query giving, per row that reaches a group,
/// `customer_id`, `rn` (the row's order), the key labels `k1..` and each metric's value `v1..`.
struct Case {
    name: &'static str,
    room: &'static str,
    rows: &'static str,
    keys: usize,
    metrics: &'static [M],
    params: &'static [(&'static str, &'static str)],
    decimals: &'static [u32],
}

const SCALE: f64 = 100.0;

/// The DuckDB query for metric `i` of `case`: per group (labels), the fixed-point sum and the
/// number of contributions (customers, for a distinct metric), the caps written out.
fn duckdb_query(case: &Case, i: usize) -> String {
    let keys: Vec<String> = (1..=case.keys).map(|k| format!("k{k}")).collect();
    let ks = keys.join(", ");
    let not_null: String = keys
        .iter()
        .map(|k| format!(" AND {k} IS NOT NULL"))
        .collect();
    let v = format!("v{}", i + 1);
    let scale = 10f64.powi(case.decimals.get(i).copied().unwrap_or(2) as i32);
    let _ = SCALE;
    let fixed = |x: &str, lo: f64, hi: f64| {
        format!(
            "LEAST(GREATEST(CAST(ROUND({x} * {scale:.1}) AS BIGINT), {}), {})",
            (lo * scale).round() as i64,
            (hi * scale).round() as i64
        )
    };
    let r = format!(
        "WITH r AS (SELECT * FROM ({}) WHERE TRUE{not_null})",
        case.rows
    );
    match case.metrics[i] {
        M::SumGroup(lo, hi) | M::AvgGroup(lo, hi) => {
            let agg = if matches!(case.metrics[i], M::SumGroup(..)) {
                "SUM"
            } else {
                "AVG"
            };
            format!(
                "{r}, g AS (SELECT customer_id, {ks}, {agg}({v}) AS t FROM r WHERE {v} IS NOT NULL GROUP BY customer_id, {ks}) \
                 SELECT {ks}, SUM({}) AS fixed, COUNT(*) AS n FROM g GROUP BY {ks}",
                fixed("t", lo, hi)
            )
        }
        M::SumRow(lo, hi, n) | M::AvgRow(lo, hi, n) => format!(
            "{r}, f AS (SELECT {ks}, {v} AS v, ROW_NUMBER() OVER (PARTITION BY customer_id, {ks} ORDER BY rn) AS k FROM r WHERE {v} IS NOT NULL) \
             SELECT {ks}, SUM({}) AS fixed, COUNT(*) AS n FROM f WHERE k <= {n} GROUP BY {ks}",
            fixed("v", lo, hi)
        ),
        M::Count(n) => format!(
            "{r}, f AS (SELECT {ks}, ROW_NUMBER() OVER (PARTITION BY customer_id, {ks} ORDER BY rn) AS k FROM r WHERE {v} IS NOT NULL) \
             SELECT {ks}, 0 AS fixed, COUNT(*) AS n FROM f WHERE k <= {n} GROUP BY {ks}"
        ),
        M::Distinct => format!(
            "{r} SELECT {ks}, 0 AS fixed, COUNT(DISTINCT customer_id) AS n FROM r GROUP BY {ks}"
        ),
    }
}

const CORPUS: &[Case] = &[
    Case {
        name: "query 1: spend, purchases and ticket by category and age band",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10)
                 t.mcc_group, c.age_band,
                 SUM(t.amount, contribution_bounds_per_group => (0, 3000)) AS spend,
                 COUNT(*, contribution_bounds_per_group => (0, 30)) AS purchases,
                 AVG(t.amount, contribution_bounds_per_row => (0, 300), max_rows_per_group => 30) AS average_ticket
               FROM customers AS c JOIN transactions AS t ON c.customer_id = t.customer_id
               GROUP BY t.mcc_group, c.age_band",
        rows: "SELECT t.customer_id, t.rn, t.mcc_group AS k1, c.age_band AS k2, t.amount AS v1, 1 AS v2, t.amount AS v3 FROM customers c JOIN transactions t USING (customer_id)",
        keys: 2,
        metrics: &[M::SumGroup(0.0, 3000.0), M::Count(30), M::AvgRow(0.0, 300.0, 30)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "customers per region",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, COUNT(DISTINCT customer_id) AS customers FROM customers GROUP BY region",
        rows: "SELECT customer_id, rn, region AS k1, 1 AS v1 FROM customers",
        keys: 1,
        metrics: &[M::Distinct],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "a filter with AND, OR, NOT and a comparison",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 SUM(amount, contribution_bounds_per_group => (0, 2000)) AS spend
               FROM transactions WHERE (amount > 20 AND NOT online) OR mcc_group = 'Fuel' GROUP BY mcc_group",
        rows: "SELECT customer_id, rn, mcc_group AS k1, amount AS v1 FROM transactions WHERE (amount > 20 AND NOT online) OR mcc_group = 'Fuel'",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 2000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "IN and NOT IN on a category",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 COUNT(*, contribution_bounds_per_group => (0, 20)) AS purchases
               FROM transactions WHERE mcc_group IN ('Grocery stores', 'Restaurants', 'Retail') AND mcc_group NOT IN ('Retail') GROUP BY mcc_group",
        rows: "SELECT customer_id, rn, mcc_group AS k1, 1 AS v1 FROM transactions WHERE mcc_group IN ('Grocery stores', 'Restaurants', 'Retail') AND mcc_group NOT IN ('Retail')",
        keys: 1,
        metrics: &[M::Count(20)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "BETWEEN on amounts and dates",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 SUM(amount, contribution_bounds_per_row => (0, 200), max_rows_per_group => 5) AS spend
               FROM transactions WHERE amount BETWEEN 10 AND 150 AND date BETWEEN DATE '2025-03-01' AND '2025-08-31' GROUP BY mcc_group",
        rows: "SELECT customer_id, rn, mcc_group AS k1, amount AS v1 FROM transactions WHERE amount BETWEEN 10 AND 150 AND date BETWEEN DATE '2025-03-01' AND DATE '2025-08-31'",
        keys: 1,
        metrics: &[M::SumRow(0.0, 200.0, 5)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "spend by month (a date part's public range)",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 12) EXTRACT(MONTH FROM date) AS month,
                 SUM(amount, contribution_bounds_per_group => (0, 1000)) AS spend
               FROM transactions GROUP BY month",
        rows: "SELECT customer_id, rn, CAST(month(date) AS VARCHAR) AS k1, amount AS v1 FROM transactions",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 1000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "purchases by quarter and online",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 8) EXTRACT(QUARTER FROM date) AS quarter, online,
                 COUNT(*, contribution_bounds_per_group => (0, 15)) AS purchases
               FROM transactions GROUP BY quarter, online",
        rows: "SELECT customer_id, rn, CAST(quarter(date) AS VARCHAR) AS k1, CAST(online AS VARCHAR) AS k2, 1 AS v1 FROM transactions",
        keys: 2,
        metrics: &[M::Count(15)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "day of the week, BigQuery's numbering (1 is Sunday)",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 7) EXTRACT(DAYOFWEEK FROM date) AS weekday,
                 AVG(amount, contribution_bounds_per_group => (0, 500)) AS ticket
               FROM transactions GROUP BY weekday",
        rows: "SELECT customer_id, rn, CAST(dayofweek(date) + 1 AS VARCHAR) AS k1, amount AS v1 FROM transactions",
        keys: 1,
        metrics: &[M::AvgGroup(0.0, 500.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "a CASE bucket of amounts as the key",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 4)
                 CASE WHEN amount < 20 THEN 'small' WHEN amount < 100 THEN 'medium' WHEN amount < 500 THEN 'large' ELSE 'very large' END AS size,
                 COUNT(*, contribution_bounds_per_group => (0, 25)) AS purchases,
                 SUM(amount, contribution_bounds_per_row => (0, 1000), max_rows_per_group => 25) AS spend
               FROM transactions GROUP BY size",
        rows: "SELECT customer_id, rn, CASE WHEN amount < 20 THEN 'small' WHEN amount < 100 THEN 'medium' WHEN amount < 500 THEN 'large' ELSE 'very large' END AS k1, 1 AS v1, amount AS v2 FROM transactions",
        keys: 1,
        metrics: &[M::Count(25), M::SumRow(0.0, 1000.0, 25)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "a simple CASE over a category",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3)
                 CASE mcc_group WHEN 'Grocery stores' THEN 'essentials' WHEN 'Fuel' THEN 'essentials' WHEN 'Utilities and telecom' THEN 'essentials' ELSE 'other' END AS need,
                 SUM(amount, contribution_bounds_per_group => (0, 4000)) AS spend
               FROM transactions GROUP BY need",
        rows: "SELECT customer_id, rn, CASE mcc_group WHEN 'Grocery stores' THEN 'essentials' WHEN 'Fuel' THEN 'essentials' WHEN 'Utilities and telecom' THEN 'essentials' ELSE 'other' END AS k1, amount AS v1 FROM transactions",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 4000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "arithmetic in the aggregated value",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 SUM(amount * 0.015 + 0.25, contribution_bounds_per_group => (0, 100)) AS fees
               FROM transactions GROUP BY mcc_group",
        rows: "SELECT customer_id, rn, mcc_group AS k1, amount * 0.015 + 0.25 AS v1 FROM transactions",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 100.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "a named parameter in the filter",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 COUNT(*, contribution_bounds_per_group => (0, 50)) AS big_purchases
               FROM transactions WHERE amount >= @min_amount GROUP BY mcc_group",
        rows: "SELECT customer_id, rn, mcc_group AS k1, 1 AS v1 FROM transactions WHERE amount >= 75",
        keys: 1,
        metrics: &[M::Count(50)],
        params: &[("min_amount", "75")],
        decimals: &[],
    },
    Case {
        name: "named parameters as bounds and a date",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = @groups) mcc_group,
                 SUM(amount, contribution_bounds_per_group => (0, @cap)) AS spend
               FROM transactions WHERE date >= @since GROUP BY mcc_group",
        rows: "SELECT customer_id, rn, mcc_group AS k1, amount AS v1 FROM transactions WHERE date >= DATE '2025-07-01'",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 1500.0)],
        params: &[("groups", "10"), ("cap", "1500"), ("since", "2025-07-01")],
        decimals: &[],
    },
    Case {
        name: "a customer's total spend, bucketed (a per-customer CTE)",
        room: "WITH per_customer AS (
                 SELECT SUM(t.amount) AS total FROM customers c LEFT JOIN transactions t ON c.customer_id = t.customer_id
               )
               SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)
                 CASE WHEN total IS NULL THEN 'none' WHEN total < 500 THEN 'under 500' WHEN total < 2000 THEN '500-2000' ELSE '2000+' END AS spender,
                 COUNT(*, contribution_bounds_per_group => (0, 1)) AS customers,
                 AVG(total, contribution_bounds_per_group => (0, 10000)) AS average_total
               FROM per_customer GROUP BY spender",
        rows: "SELECT customer_id, 1 AS rn, CASE WHEN total IS NULL THEN 'none' WHEN total < 500 THEN 'under 500' WHEN total < 2000 THEN '500-2000' ELSE '2000+' END AS k1, 1 AS v1, total AS v2
               FROM (SELECT c.customer_id, SUM(t.amount) AS total FROM customers c LEFT JOIN transactions t USING (customer_id) GROUP BY c.customer_id)",
        keys: 1,
        metrics: &[M::Count(1), M::AvgGroup(0.0, 10000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "per-customer counts per category, then their distribution (a subquery in FROM)",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) s.mcc_group,
                 CASE WHEN s.n >= 5 THEN 'regular' ELSE 'occasional' END AS habit,
                 COUNT(*, contribution_bounds_per_group => (0, 1)) AS customers
               FROM (SELECT mcc_group, COUNT(*) AS n FROM transactions GROUP BY mcc_group) AS s
               GROUP BY s.mcc_group, habit",
        rows: "SELECT customer_id, 1 AS rn, mcc_group AS k1, CASE WHEN n >= 5 THEN 'regular' ELSE 'occasional' END AS k2, 1 AS v1
               FROM (SELECT customer_id, mcc_group, COUNT(*) AS n FROM transactions GROUP BY customer_id, mcc_group)",
        keys: 2,
        metrics: &[M::Count(1)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "HAVING, MIN and MAX inside a per-customer relation",
        room: "WITH spread AS (
                 SELECT mcc_group, MAX(amount) - MIN(amount) AS range_amount FROM transactions GROUP BY mcc_group HAVING COUNT(*) >= 2
               )
               SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 AVG(range_amount, contribution_bounds_per_group => (0, 1000)) AS spread
               FROM spread GROUP BY mcc_group",
        rows: "SELECT customer_id, 1 AS rn, mcc_group AS k1, range_amount AS v1
               FROM (SELECT customer_id, mcc_group, MAX(amount) - MIN(amount) AS range_amount FROM transactions GROUP BY customer_id, mcc_group HAVING COUNT(*) >= 2)",
        keys: 1,
        metrics: &[M::AvgGroup(0.0, 1000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "two CTEs, the second reading the first",
        room: "WITH monthly AS (
                 SELECT EXTRACT(MONTH FROM date) AS m, SUM(amount) AS spend FROM transactions GROUP BY m
               ),
               peak AS (SELECT MAX(spend) AS top, COUNT(*) AS months FROM monthly)
               SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)
                 CASE WHEN months >= 10 THEN 'steady' WHEN months >= 4 THEN 'seasonal' ELSE 'rare' END AS pattern,
                 SUM(top, contribution_bounds_per_group => (0, 3000)) AS peak_month_spend
               FROM peak GROUP BY pattern",
        rows: "SELECT customer_id, 1 AS rn, CASE WHEN months >= 10 THEN 'steady' WHEN months >= 4 THEN 'seasonal' ELSE 'rare' END AS k1, top AS v1
               FROM (SELECT c.customer_id, MAX(spend) AS top, COUNT(spend) AS months FROM customers c LEFT JOIN
                     (SELECT customer_id, month(date) AS m, SUM(amount) AS spend FROM transactions GROUP BY customer_id, m) x USING (customer_id)
                     GROUP BY c.customer_id)",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 3000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "a LEFT JOIN keeps customers without transactions",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) c.region,
                 COUNT(t.amount, contribution_bounds_per_group => (0, 40)) AS purchases,
                 COUNT(DISTINCT customer_id) AS customers
               FROM customers c LEFT JOIN transactions t ON c.customer_id = t.customer_id AND t.amount > 500
               GROUP BY c.region",
        rows: "SELECT c.customer_id, COALESCE(t.rn, 0) AS rn, c.region AS k1, t.amount AS v1, 1 AS v2 FROM customers c LEFT JOIN transactions t ON c.customer_id = t.customer_id AND t.amount > 500",
        keys: 1,
        metrics: &[M::Count(40), M::Distinct],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "customer attributes: balance by account type and tenure bucket",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) account_type,
                 CASE WHEN tenure_years < 2 THEN 'new' WHEN tenure_years < 10 THEN 'established' ELSE 'long-standing' END AS tenure,
                 AVG(avg_monthly_balance, contribution_bounds_per_group => (0, 50000)) AS balance
               FROM customers GROUP BY account_type, tenure",
        rows: "SELECT customer_id, rn, account_type AS k1, CASE WHEN tenure_years < 2 THEN 'new' WHEN tenure_years < 10 THEN 'established' ELSE 'long-standing' END AS k2, avg_monthly_balance AS v1 FROM customers",
        keys: 2,
        metrics: &[M::AvgGroup(0.0, 50000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "a negative lower bound (balances can be overdrawn)",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region,
                 SUM(avg_monthly_balance - 2000, contribution_bounds_per_group => (-2000, 8000)) AS surplus
               FROM customers GROUP BY region",
        rows: "SELECT customer_id, rn, region AS k1, avg_monthly_balance - 2000 AS v1 FROM customers",
        keys: 1,
        metrics: &[M::SumGroup(-2000.0, 8000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "a boolean expression as the key",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) fraud_alerts_last_quarter > 0 AS alerted,
                 COUNT(DISTINCT customer_id) AS customers
               FROM customers GROUP BY alerted",
        rows: "SELECT customer_id, rn, CAST(fraud_alerts_last_quarter > 0 AS VARCHAR) AS k1, 1 AS v1 FROM customers",
        keys: 1,
        metrics: &[M::Distinct],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "no GROUP BY: one number",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY SUM(amount, contribution_bounds_per_group => (0, 20000)) AS total FROM transactions",
        rows: "SELECT customer_id, rn, 'all' AS k1, amount AS v1 FROM transactions",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 20000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "LEAST, GREATEST, ABS, ROUND and CAST",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 SUM(LEAST(GREATEST(ROUND(amount / 3, 1), 5), 200) + ABS(CAST(amount AS INT64) % 7), contribution_bounds_per_group => (0, 5000)) AS score
               FROM transactions GROUP BY mcc_group",
        // BigQuery's ROUND and CAST round halves away from zero, as the room does; DuckDB's
        // CAST rounds them to even and its ROUND(x, 1) rounds the decimal, so both are written out.
        rows: "SELECT customer_id, rn, mcc_group AS k1,
                 LEAST(GREATEST(sign(amount / 3 * 10) * floor(abs(amount / 3 * 10) + 0.5) / 10, 5), 200)
                 + ABS(CAST(sign(amount) * floor(abs(amount) + 0.5) AS BIGINT) % 7) AS v1 FROM transactions",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 5000.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "COALESCE, NULLIF and IS NULL through a LEFT JOIN",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) c.age_band,
                 SUM(COALESCE(t.amount, 0), contribution_bounds_per_group => (0, 9000)) AS spend,
                 COUNT(NULLIF(t.online, FALSE), contribution_bounds_per_group => (0, 100)) AS online_purchases
               FROM customers c LEFT JOIN transactions t ON c.customer_id = t.customer_id AND t.mcc_group = 'Travel and airlines'
               WHERE t.amount IS NULL OR t.amount > 0
               GROUP BY c.age_band",
        rows: "SELECT c.customer_id, COALESCE(t.rn, 0) AS rn, c.age_band AS k1, COALESCE(t.amount, 0) AS v1, NULLIF(t.online, FALSE) AS v2
               FROM customers c LEFT JOIN transactions t ON c.customer_id = t.customer_id AND t.mcc_group = 'Travel and airlines'
               WHERE t.amount IS NULL OR t.amount > 0",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 9000.0), M::Count(100)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "IF and SAFE_DIVIDE",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 2) IF(online, 'online', 'in store') AS channel,
                 AVG(SAFE_DIVIDE(amount, 10), contribution_bounds_per_row => (0, 50), max_rows_per_group => 40) AS tenth
               FROM transactions GROUP BY channel",
        rows: "SELECT customer_id, rn, CASE WHEN online THEN 'online' ELSE 'in store' END AS k1, amount / 10 AS v1 FROM transactions",
        keys: 1,
        metrics: &[M::AvgRow(0.0, 50.0, 40)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "date arithmetic: days since the first purchase",
        room: "WITH first AS (SELECT MIN(date) AS first_day, MAX(date) AS last_day FROM transactions)
               SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)
                 CASE WHEN last_day - first_day > 300 THEN 'all year' WHEN last_day - first_day > 90 THEN 'months' ELSE 'weeks' END AS span,
                 COUNT(*, contribution_bounds_per_group => (0, 1)) AS customers
               FROM first WHERE first_day IS NOT NULL GROUP BY span",
        rows: "SELECT customer_id, 1 AS rn, CASE WHEN last_day - first_day > 300 THEN 'all year' WHEN last_day - first_day > 90 THEN 'months' ELSE 'weeks' END AS k1, 1 AS v1
               FROM (SELECT customer_id, MIN(date) AS first_day, MAX(date) AS last_day FROM transactions GROUP BY customer_id)",
        keys: 1,
        metrics: &[M::Count(1)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "EXTRACT(DAY) and EXTRACT(DAYOFYEAR) in filters, YEAR in a comparison",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 COUNT(*, contribution_bounds_per_group => (0, 10)) AS month_start_purchases
               FROM transactions WHERE EXTRACT(DAY FROM date) <= 5 AND EXTRACT(DAYOFYEAR FROM date) > 31 AND EXTRACT(YEAR FROM date) = 2025
               GROUP BY mcc_group",
        rows: "SELECT customer_id, rn, mcc_group AS k1, 1 AS v1 FROM transactions WHERE day(date) <= 5 AND dayofyear(date) > 31 AND year(date) = 2025",
        keys: 1,
        metrics: &[M::Count(10)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "an integer CASE as the key, and decimals",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)
                 CASE WHEN fraud_alerts_last_quarter = 0 THEN 0 WHEN fraud_alerts_last_quarter = 1 THEN 1 ELSE 2 END AS alerts,
                 AVG(tenure_years, contribution_bounds_per_group => (0, 60), decimals => 3) AS tenure
               FROM customers GROUP BY alerts",
        rows: "SELECT customer_id, rn, CAST(CASE WHEN fraud_alerts_last_quarter = 0 THEN 0 WHEN fraud_alerts_last_quarter = 1 THEN 1 ELSE 2 END AS VARCHAR) AS k1, tenure_years AS v1 FROM customers",
        keys: 1,
        metrics: &[M::AvgGroup(0.0, 60.0)],
        params: &[],
        decimals: &[3],
    },
    Case {
        name: "three key parts",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 20) c.region, t.online, EXTRACT(QUARTER FROM t.date) AS q,
                 SUM(t.amount, contribution_bounds_per_group => (0, 1500)) AS spend
               FROM customers c, transactions t GROUP BY c.region, t.online, q",
        rows: "SELECT t.customer_id, t.rn, c.region AS k1, CAST(t.online AS VARCHAR) AS k2, CAST(quarter(t.date) AS VARCHAR) AS k3, t.amount AS v1 FROM customers c JOIN transactions t USING (customer_id)",
        keys: 3,
        metrics: &[M::SumGroup(0.0, 1500.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "integer division and modulo",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region,
                 SUM(tenure_years % 5 + tenure_years / 4, contribution_bounds_per_group => (0, 40)) AS t
               FROM customers GROUP BY region",
        rows: "SELECT customer_id, rn, region AS k1, tenure_years % 5 + tenure_years / 4 AS v1 FROM customers",
        keys: 1,
        metrics: &[M::SumGroup(0.0, 40.0)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "clamping bites: low per-row caps and few rows",
        room: "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group,
                 SUM(amount, contribution_bounds_per_row => (10, 40), max_rows_per_group => 2) AS capped,
                 COUNT(*, contribution_bounds_per_group => (0, 2)) AS first_two
               FROM transactions GROUP BY mcc_group",
        rows: "SELECT customer_id, rn, mcc_group AS k1, amount AS v1, 1 AS v2 FROM transactions",
        keys: 1,
        metrics: &[M::SumRow(10.0, 40.0, 2), M::Count(2)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "a join condition beyond the customer, against a per-customer relation",
        room: "WITH typical AS (SELECT AVG(amount) AS usual FROM transactions)
               SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) t.mcc_group,
                 COUNT(*, contribution_bounds_per_group => (0, 30)) AS unusual
               FROM transactions t JOIN typical ON t.amount > 3 * typical.usual
               GROUP BY t.mcc_group",
        rows: "SELECT t.customer_id, t.rn, t.mcc_group AS k1, 1 AS v1 FROM transactions t JOIN (SELECT customer_id, AVG(amount) AS usual FROM transactions GROUP BY customer_id) u
               ON t.customer_id = u.customer_id AND t.amount > 3 * u.usual",
        keys: 1,
        metrics: &[M::Count(30)],
        params: &[],
        decimals: &[],
    },
    Case {
        name: "COUNT(DISTINCT ...) inside a per-customer relation",
        room: "WITH variety AS (SELECT COUNT(DISTINCT mcc_group) AS kinds FROM transactions)
               SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)
                 CASE WHEN kinds >= 7 THEN 'broad' WHEN kinds >= 4 THEN 'mixed' ELSE 'narrow' END AS breadth,
                 COUNT(*, contribution_bounds_per_group => (0, 1)) AS customers
               FROM variety GROUP BY breadth",
        rows: "SELECT c.customer_id, 1 AS rn, CASE WHEN kinds >= 7 THEN 'broad' WHEN kinds >= 4 THEN 'mixed' ELSE 'narrow' END AS k1, 1 AS v1
               FROM customers c LEFT JOIN (SELECT customer_id, COUNT(DISTINCT mcc_group) AS kinds FROM transactions GROUP BY customer_id) v USING (customer_id)
               WHERE kinds IS NOT NULL OR TRUE",
        keys: 1,
        metrics: &[M::Count(1)],
        params: &[],
        decimals: &[],
    },
];

/// The corpus's data: a synthetic bank as CSV files, and the same files as the room loads them.
struct Bank {
    dir: tempfile::TempDir,
    dataset: Arc<Dataset>,
}

fn bank() -> &'static Bank {
    static BANK: OnceLock<Bank> = OnceLock::new();
    BANK.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        strongroom_synthetic::generate(400, 20.0, 16)
            .write_csv(dir.path())
            .expect("csv written");
        let schema = DatasetSchema::load(&dir.path().join("schema.toml")).expect("schema");
        let tables = ["customers", "transactions"]
            .map(|t| (t.to_string(), dir.path().join(format!("{t}.csv"))))
            .to_vec();
        let (dataset, _) = load_csv_tables(&tables, Some(&schema), "customer_id").expect("loads");
        Bank {
            dir,
            dataset: Arc::new(dataset),
        }
    })
}

fn engine() -> &'static PreparedModule {
    static ENGINE: OnceLock<PreparedModule> = OnceLock::new();
    ENGINE.get_or_init(|| prepare(&example("sql_engine")))
}

/// A metric's groups: (labels, fixed-point sum, contributions or customers).
type Groups = Vec<(Vec<String>, i128, u64)>;

/// Runs `sql` through the engine in the sandbox (isolated, or batched), exact.
fn run_sql(sql: &str, params: &[(&str, &str)], batched: bool) -> (Manifest, Vec<Groups>) {
    let bank = bank();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let compiled =
        strongroom_sql::compile(sql, &strongroom::room::sql::catalog(&bank.dataset), &params)
            .unwrap_or_else(|e| panic!("does not compile: {e}\n{sql}"));
    let ctx = RunContext::new(
        Arc::clone(&bank.dataset),
        compiled.manifest.clone(),
        Mode::Isolated,
        RunLimits::default(),
        [7; 32],
    )
    .expect("run context")
    .with_batched(batched)
    .with_sql_plan(compiled.plan.to_hex());
    let report = sandbox().run(engine(), Arc::new(ctx), 2);
    assert!(
        report.outcome.is_completed(),
        "{sql}\n{:?}: {:?}",
        report.outcome,
        report.detail
    );
    let manifest = compiled.manifest;
    (
        manifest.clone(),
        groups(
            &manifest,
            &bank.dataset,
            report.aggregate.as_ref().expect("aggregate"),
        ),
    )
}

fn groups(
    manifest: &Manifest,
    dataset: &Dataset,
    aggregate: &strongroom::output_gate::Aggregate,
) -> Vec<Groups> {
    let labels = domain_labels(manifest, dataset);
    aggregate
        .metrics
        .iter()
        .enumerate()
        .map(|(m, metric)| {
            let mut out: Groups = metric
                .rows
                .iter()
                .map(|row| {
                    let names = row
                        .key
                        .iter()
                        .enumerate()
                        .map(|(part, &i)| labels[m][part][i as usize].clone())
                        .collect();
                    let n = match metric.kind {
                        MetricKind::Distinct => row.entities,
                        _ => row.contributions,
                    };
                    let fixed = if metric.kind.counts_only() {
                        0
                    } else {
                        row.sum_fixed
                    };
                    (names, fixed, n)
                })
                .collect();
            out.sort();
            out
        })
        .collect()
}

/// Runs `queries` in DuckDB (Python's duckdb package, installed into the target directory when
/// missing) on the bank's CSV files.
fn duckdb(dir: &Path, queries: &[String]) -> Vec<Vec<Vec<Option<String>>>> {
    let script = repo_root().join("tests/sql/duckdb_run.py");
    let deps = python_duckdb();
    let request = serde_json::json!({
        "tables": {
            "customers": dir.join("customers.csv"),
            "transactions": dir.join("transactions.csv"),
        },
        "queries": queries,
    });
    let mut command = std::process::Command::new("python3");
    command.arg(&script);
    if let Some(deps) = &deps {
        command.env("PYTHONPATH", deps);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        request.to_string().as_bytes(),
    )
    .expect("request written");
    let out = child.wait_with_output().expect("duckdb finishes");
    assert!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    serde_json::from_value(value["results"].clone()).expect("results")
}

/// Where Python finds duckdb: already importable (`None`), or installed from PyPI into the
/// target directory once.
fn python_duckdb() -> Option<PathBuf> {
    static DEPS: OnceLock<Option<PathBuf>> = OnceLock::new();
    DEPS.get_or_init(|| {
        let has = |path: Option<&Path>| {
            let mut c = std::process::Command::new("python3");
            c.args(["-c", "import duckdb"]);
            if let Some(p) = path {
                c.env("PYTHONPATH", p);
            }
            c.output().is_ok_and(|o| o.status.success())
        };
        if has(None) {
            return None;
        }
        let target = repo_root().join("target").join("python-duckdb");
        if !has(Some(&target)) {
            let status = std::process::Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
                .arg(&target)
                .arg("duckdb")
                .status()
                .expect("pip runs");
            assert!(
                status.success(),
                "the SQL corpus compares with DuckDB: install it with `python3 -m pip install duckdb`"
            );
        }
        Some(target)
    })
    .clone()
}

#[test]
fn the_corpus_equals_duckdb_exactly() {
    assert!(
        CORPUS.len() >= 30,
        "the corpus has {} queries",
        CORPUS.len()
    );
    let bank = bank();
    let mut queries = Vec::new();
    for case in CORPUS {
        for i in 0..case.metrics.len() {
            queries.push(duckdb_query(case, i));
        }
    }
    let answers = duckdb(bank.dir.path(), &queries);
    let mut answers = answers.into_iter();
    for case in CORPUS {
        let (manifest, room) = run_sql(case.room, case.params, false);
        assert_eq!(manifest.metrics.len(), case.metrics.len(), "{}", case.name);
        for (i, ours) in room.iter().enumerate() {
            let theirs = answers.next().expect("an answer per metric");
            let mut theirs: Groups = theirs
                .into_iter()
                .map(|row| {
                    let cell = |c: &Option<String>| c.clone().unwrap_or_else(|| "NULL".into());
                    let labels = row[..case.keys].iter().map(cell).collect();
                    let fixed: i128 = cell(&row[case.keys]).parse().expect("fixed");
                    let n: u64 = cell(&row[case.keys + 1]).parse().expect("n");
                    (labels, fixed, n)
                })
                .collect();
            theirs.sort();
            assert!(
                !ours.is_empty(),
                "{}: metric {i} released no group",
                case.name
            );
            assert_eq!(
                ours, &theirs,
                "{}: metric {} ({})\nroom:   {ours:?}\nDuckDB: {theirs:?}",
                case.name, i, manifest.metrics[i].name
            );
        }
    }
}

#[test]
fn batched_runs_give_the_isolated_aggregates() {
    for case in CORPUS.iter().step_by(5) {
        let isolated = run_sql(case.room, case.params, false).1;
        let batched = run_sql(case.room, case.params, true).1;
        assert_eq!(isolated, batched, "{}", case.name);
    }
}

/// A demo question: the module crate that asks it in Rust, its SQL files, the parameters.
type DemoQuestion = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// The demo's questions in SQL (examples/sql/), each with the module that asks it in Rust.
const DEMO_QUESTIONS: &[DemoQuestion] = &[
    ("spend_by_category", &["spend-by-category.sql"], &[]),
    (
        "fraud_alerts_by_region",
        &["fraud-alerts-by-region.sql"],
        &[("min_alerts", "1")],
    ),
    (
        "messenger_audience",
        &["messenger-balance-bands.sql", "messenger-spend.sql"],
        &[],
    ),
    (
        "analyst_spend_by_region",
        &["analyst-spend-by-region.sql"],
        &[],
    ),
];

/// The bank with the matched-audience column (what audience matching adds), every third
/// customer a member.
fn with_audience(dataset: &Dataset) -> Arc<Dataset> {
    let mut d = dataset.clone();
    let customers = d
        .tables
        .iter_mut()
        .find(|t| t.name == "customers")
        .expect("customers");
    let rows = customers.entity_of_row.len();
    let mut table = (**customers).clone();
    table.guest_columns.push(strongroom::dataset::Column {
        name: "in_partner_audience".into(),
        data: strongroom::dataset::ColumnData::Bool((0..rows).map(|i| i % 3 == 0).collect()),
        dictionary: None,
    });
    *customers = Arc::new(table);
    Arc::new(d)
}

#[test]
fn the_demo_questions_in_sql_equal_the_rust_modules() {
    let bank = with_audience(&bank().dataset);
    let catalog = strongroom::room::sql::catalog(&bank);
    for (module, files, params) in DEMO_QUESTIONS {
        let prepared = prepare(&example(module));
        let report = strongroom_tests::run(&prepared, &bank, RunLimits::default());
        assert!(
            report.outcome.is_completed(),
            "{module}: {:?}",
            report.detail
        );
        let ours = groups(
            &prepared.module.manifest,
            &bank,
            report.aggregate.as_ref().expect("aggregate"),
        );
        let mut matched = 0;
        for file in *files {
            let path = repo_root().join("examples").join("sql").join(file);
            let text = std::fs::read_to_string(&path).expect("the query file");
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            let compiled = strongroom_sql::compile(&text, &catalog, &params)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let ctx = RunContext::new(
                Arc::clone(&bank),
                compiled.manifest.clone(),
                Mode::Isolated,
                RunLimits::default(),
                [7; 32],
            )
            .expect("run context")
            .with_sql_plan(compiled.plan.to_hex());
            let sql_report = sandbox().run(engine(), Arc::new(ctx), 2);
            assert!(
                sql_report.outcome.is_completed(),
                "{file}: {:?}",
                sql_report.detail
            );
            let sql = groups(
                &compiled.manifest,
                &bank,
                sql_report.aggregate.as_ref().expect("aggregate"),
            );
            for (m, metric) in compiled.manifest.metrics.iter().enumerate() {
                let at = prepared
                    .module
                    .manifest
                    .metrics
                    .iter()
                    .position(|x| x.name == metric.name)
                    .unwrap_or_else(|| panic!("{file}: no metric {} in {module}", metric.name));
                assert!(!sql[m].is_empty(), "{file}: {} is empty", metric.name);
                assert_eq!(
                    sql[m], ours[at],
                    "{file}: {} differs from {module}'s",
                    metric.name
                );
                matched += 1;
            }
        }
        assert_eq!(
            matched,
            prepared.module.manifest.metrics.len(),
            "{module}: every metric is asked in SQL"
        );
    }
}

fn sql_policy(engine_sha256: &str, rules: &str) -> strongroom::room::policy::Policy {
    strongroom::room::policy::Policy::parse(&format!(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"5\"\nmin_group_size = 10\nresult_delay_seconds = 0\n\n[sql]\nengine_sha256 = \"{engine_sha256}\"\n{rules}"
    ))
    .expect("policy")
}

fn sql_request<'a>(
    module: &'a [u8],
    data: &Arc<Dataset>,
    sql: &str,
    params: &[(&str, &str)],
) -> strongroom::room::jobs::JobRequest<'a> {
    strongroom::room::jobs::JobRequest {
        partner: "socialco",
        module,
        sql: Some(sql.to_string()),
        dataset: Arc::clone(data).into(),
        dataset_sha256: "00".repeat(32),
        dataset_origin: "synthetic test bank".into(),
        sealed_by: "bigbank".into(),
        cost_nano: 500_000_000,
        threads: 2,
        audience: None,
        job_id: None,
        parameters: params
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        progress: None,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_job_runs_only_as_the_policy_allows_and_its_hashes_reach_the_log_and_receipt() {
    use strongroom::room::jobs::{JobError, run_job};
    let engine = example("sql_engine");
    let engine_sha256 = sha256_hex(&engine);
    let data = Arc::clone(&bank().dataset);
    let approved =
        std::fs::read_to_string(repo_root().join("examples/sql/fraud-alerts-by-region.sql"))
            .expect("query");
    let template = strongroom_sql::template_sha256(&approved).expect("parses");
    let (dir, room) = strongroom_tests::room_with(&sql_policy(
        &engine_sha256,
        &format!("queries = \"templates\"\ntemplates = [\"{template}\"]\n"),
    ))
    .await;
    let refusal = |r: Result<_, JobError>| match r {
        Err(e @ JobError::Refused(_)) => {
            e.refusal_code().expect("a code").to_string() + ": " + &e.to_string()
        }
        Err(other) => panic!("not a refusal: {other}"),
        Ok(_) => panic!("ran, but should have been refused"),
    };
    // A query that is not an approved template is refused before any charge.
    let other = "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, COUNT(DISTINCT customer_id) AS n FROM customers GROUP BY region";
    let why = refusal(run_job(&room, sandbox(), sql_request(&engine, &data, other, &[])).await);
    assert!(why.starts_with("template_not_approved"), "{why}");
    // The approved template, written differently (spacing, comments, keyword case), with its
    // parameter free, runs.
    let respelled = format!(
        "-- respelled\n{}",
        approved.to_lowercase().replace('\n', "\n  ")
    );
    let result = run_job(
        &room,
        sandbox(),
        sql_request(&engine, &data, &respelled, &[("min_alerts", "2")]),
    )
    .await
    .expect("the template runs");
    assert_eq!(result.outcome, "completed");
    let released = result.released.as_ref().expect("released");
    assert_eq!(released.metrics.len(), 2);
    // Its query and plan hashes are in the charge's entry, the result's entry and the receipt.
    let compiled = strongroom_sql::compile(
        &respelled,
        &strongroom::room::sql::catalog(&data),
        &[("min_alerts".into(), "2".into())],
    )
    .expect("compiles");
    assert_eq!(compiled.query_sha256, template);
    let vkey = std::fs::read_to_string(dir.path().join("room/keys/room.vkey")).expect("vkey");
    let verifier = strongroom_verify::note::Verifier::parse(&vkey).expect("verifier");
    let receipt =
        strongroom_verify::receipt::Receipt::verify(&result.receipt, &verifier).expect("receipt");
    let sql = receipt.sql.expect("the receipt names the query");
    assert_eq!(sql.query_sha256, template);
    assert_eq!(sql.plan_sha256, compiled.plan_sha256);
    assert_eq!(receipt.module_sha256, engine_sha256);
    let forged = result
        .receipt
        .replace(&compiled.plan_sha256, &"0".repeat(64));
    assert!(strongroom_verify::receipt::Receipt::verify(&forged, &verifier).is_err());
    let entries = room.audit().entries(0).await.expect("entries");
    let charged = entries
        .iter()
        .find(|e| e.entry.contains("\"budget.charged\""))
        .expect("a charge entry");
    assert!(
        charged
            .entry
            .contains(&format!("\"query_sha256\":\"{template}\"")),
        "{}",
        charged.entry
    );
    assert!(
        charged
            .entry
            .contains(&format!("\"plan_sha256\":\"{}\"", compiled.plan_sha256))
    );
    // Only the engine the policy names runs SQL.
    let module = example("spend_by_category");
    let why = refusal(
        run_job(
            &room,
            sandbox(),
            sql_request(&module, &data, &approved, &[("min_alerts", "1")]),
        )
        .await,
    );
    assert!(why.starts_with("not_the_sql_engine"), "{why}");
    // A query that does not compile says where.
    let broken = approved.replace("region", "regoin");
    let why = refusal(
        run_job(
            &room,
            sandbox(),
            sql_request(&engine, &data, &broken, &[("min_alerts", "1")]),
        )
        .await,
    );
    assert!(
        why.starts_with("sql_refused") && why.contains("did you mean region?"),
        "{why}"
    );

    // Without an [sql] section, no SQL at all.
    let no_sql = strongroom::room::policy::Policy::parse(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"5\"\n",
    )
    .expect("policy");
    let (_dir2, room2) = strongroom_tests::room_with(&no_sql).await;
    let why = refusal(
        run_job(
            &room2,
            sandbox(),
            sql_request(&engine, &data, &approved, &[("min_alerts", "1")]),
        )
        .await,
    );
    assert!(why.starts_with("sql_not_allowed"), "{why}");
}

/// A hostile plan (one the room did not compile for this job) can do no more than a hostile
/// module: the engine bounds by the plan, the room checks every cell against the manifest it
/// derived itself, and a customer whose cells break it is dropped.
#[test]
fn a_plan_with_other_bounds_than_the_rooms_manifest_is_held_to_the_manifest() {
    let bank = bank();
    let catalog = strongroom::room::sql::catalog(&bank.dataset);
    let query = |cap: u32| {
        strongroom_sql::compile(
            &format!("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10) mcc_group, SUM(amount, contribution_bounds_per_group => (0, {cap})) AS spend FROM transactions GROUP BY mcc_group"),
            &catalog,
            &[],
        )
        .expect("compiles")
    };
    let (narrow, wide) = (query(10), query(100_000));
    let run = |plan: &strongroom_sql::Compiled| {
        let ctx = RunContext::new(
            Arc::clone(&bank.dataset),
            narrow.manifest.clone(),
            Mode::Isolated,
            RunLimits::default(),
            [7; 32],
        )
        .expect("run context")
        .with_sql_plan(plan.plan.to_hex());
        sandbox().run(engine(), Arc::new(ctx), 2)
    };
    let honest = run(&narrow);
    let hostile = run(&wide);
    let total = |r: &strongroom::guest_boundary::RunReport| -> i128 {
        r.aggregate
            .as_ref()
            .map_or(0, |a| a.metrics[0].rows.iter().map(|g| g.sum_fixed).sum())
    };
    let entities = bank.dataset.entities() as i128;
    assert!(total(&honest) > 0);
    assert!(
        total(&honest) <= entities * 10 * 10 * 100,
        "the honest plan is within its bounds"
    );
    assert!(
        total(&hostile) <= total(&honest),
        "the wider plan released more than the room's manifest allows: {} > {}",
        total(&hostile),
        total(&honest)
    );
    assert!(
        !hostile.failed_units.is_empty() || !hostile.outcome.is_completed(),
        "the room noticed the cells that broke its bounds"
    );
}
