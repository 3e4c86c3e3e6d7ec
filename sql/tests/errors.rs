//! Refused queries: each says where, what is not allowed and what would be.

use strongroom_sql::plan::ColumnType;
use strongroom_sql::{Catalog, CatalogColumn, CatalogTable, SqlError, compile};

fn col(name: &str, ty: ColumnType, dictionary: &[&str]) -> CatalogColumn {
    CatalogColumn {
        name: name.into(),
        ty,
        dictionary: dictionary.iter().map(|s| s.to_string()).collect(),
        min: None,
        max: None,
    }
}

/// A bank like the synthetic one, as a query sees it.
fn bank() -> Catalog {
    let mut amount = col("amount", ColumnType::Float, &[]);
    amount.min = Some(0.0);
    amount.max = Some(1_000_000.0);
    Catalog {
        tables: vec![
            CatalogTable {
                name: "customers".into(),
                entity: Some("customer_id".into()),
                identifiers: vec!["email".into(), "phone".into()],
                columns: vec![
                    col(
                        "age_band",
                        ColumnType::Category,
                        &["18-24", "25-34", "35-44"],
                    ),
                    col("region", ColumnType::Category, &["North", "South"]),
                    col("tenure_years", ColumnType::Int, &[]),
                    col("avg_monthly_balance", ColumnType::Float, &[]),
                    col("in_partner_audience", ColumnType::Bool, &[]),
                ],
            },
            CatalogTable {
                name: "transactions".into(),
                entity: Some("customer_id".into()),
                identifiers: vec![],
                columns: vec![
                    col("date", ColumnType::Date, &[]),
                    col(
                        "mcc_group",
                        ColumnType::Category,
                        &["Groceries", "Dining", "Travel"],
                    ),
                    amount,
                    col("online", ColumnType::Bool, &[]),
                ],
            },
        ],
    }
}

fn refused(sql: &str) -> SqlError {
    match compile(sql, &bank(), &[("min_amount".into(), "10".into())]) {
        Ok(c) => panic!("compiled, but should not have:\n{sql}\n{:?}", c.plan),
        Err(e) => e,
    }
}

const QUERY_1: &str = "SELECT WITH DIFFERENTIAL_PRIVACY
    OPTIONS (max_groups_contributed = 10)
  t.mcc_group,
  c.age_band,
  SUM(t.amount, contribution_bounds_per_group => (0, 3000)) AS spend,
  COUNT(*, contribution_bounds_per_group => (0, 30)) AS purchases,
  AVG(t.amount, contribution_bounds_per_row => (0, 300), max_rows_per_group => 30) AS average_ticket
FROM customers AS c
JOIN transactions AS t ON c.customer_id = t.customer_id
GROUP BY t.mcc_group, c.age_band";

#[test]
fn query_one_compiles_to_the_modules_manifest() {
    let compiled = compile(QUERY_1, &bank(), &[]).expect("compiles");
    let m = &compiled.manifest;
    assert_eq!(m.max_groups_per_entity, 10);
    let names: Vec<&str> = m.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["spend", "purchases", "average_ticket"]);
    assert_eq!(m.metrics[1].max_contributions_per_group, 30);
    assert_eq!(m.metrics[2].max_contributions_per_group, 30);
    assert_eq!((m.metrics[0].lower, m.metrics[0].upper), (0.0, 3000.0));
    // Only the columns the query uses are read.
    let reads: Vec<(String, Vec<String>)> = m
        .reads
        .iter()
        .map(|r| {
            (
                r.table.clone(),
                r.columns.iter().map(|c| c.0.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        reads,
        [
            ("customers".to_string(), vec!["age_band".to_string()]),
            (
                "transactions".to_string(),
                vec!["mcc_group".to_string(), "amount".to_string()]
            )
        ]
    );
}

#[test]
fn identifiers_are_never_group_keys() {
    let e = refused(
        "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)\n  customers.email, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n\nFROM customers\nGROUP BY customers.email",
    );
    assert_eq!((e.line, e.column), (4, 10), "{e}");
    assert!(
        e.message.contains("identifier columns are never group keys; group by a category column or a CASE with literal outputs"),
        "{e}"
    );
}

#[test]
fn missing_bounds_suggest_bounds() {
    let e = refused(
        "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3)\n  mcc_group, SUM(amount) AS spend FROM transactions GROUP BY mcc_group",
    );
    assert_eq!(e.line, 2);
    assert!(
        e.message
            .contains("contribution_bounds_per_group => (0, 1000)"),
        "{e}"
    );
    let e = refused(
        "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3)\n  mcc_group, COUNT(*) AS n FROM transactions GROUP BY mcc_group",
    );
    assert!(
        e.message
            .contains("contribution_bounds_per_group => (0, N)"),
        "{e}"
    );
}

#[test]
fn other_refusals_name_what_would_do() {
    for (sql, want) in [
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3) amount, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM transactions GROUP BY amount",
            "has no public domain",
        ),
        (
            "SELECT mcc_group, COUNT(*) FROM transactions GROUP BY mcc_group",
            "needs the differential-privacy clause",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3) mcc_group, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM transactions WHERE mcc_group = 'Grocery' GROUP BY mcc_group",
            "did you mean Groceries?",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3) mcc_group, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM transactions WHERE amont > 3 GROUP BY mcc_group",
            "did you mean amount?",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3) mcc_group, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM transactions GROUP BY mcc_group ORDER BY n",
            "ORDER BY is not allowed",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3) mcc_group, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM transactions WHERE amount > @missing GROUP BY mcc_group",
            "parameter @missing has no value",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (epsilon = 1) COUNT(DISTINCT customer_id) AS n FROM customers",
            "charges the job's cost",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY COUNT(DISTINCT region) AS n FROM customers",
            "only distinct customers",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY mcc_group, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM transactions GROUP BY mcc_group",
            "max_groups_contributed = N",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) customer_id, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM customers GROUP BY customer_id",
            "one group per customer",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM customers GROUP BY region HAVING COUNT(*) > 5",
            "HAVING is not allowed",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, SUM(avg_monthly_balance, contribution_bounds_per_row => (0, 10)) AS s FROM customers GROUP BY region",
            "needs max_rows_per_group",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM customers RIGHT JOIN transactions ON TRUE GROUP BY region",
            "RIGHT JOIN is not supported",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM customers WHERE region < 'North' GROUP BY region",
            "categories have no order",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) EXTRACT(YEAR FROM date) AS y, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM transactions GROUP BY y",
            "years have no public range",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n, tenure_years FROM customers GROUP BY region",
            "neither a group key nor an aggregate",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, SUM(phone, contribution_bounds_per_group => (0, 1)) AS n FROM customers GROUP BY region",
            "identifier column",
        ),
        (
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1) region, COUNT(*, contribution_bounds_per_group => (0, 1)) AS n FROM custmers GROUP BY region",
            "did you mean customers?",
        ),
    ] {
        let e = refused(sql);
        assert!(
            e.message.contains(want),
            "{sql}\n  gave: {e}\n  wanted: {want}"
        );
        assert!(e.line >= 1 && e.column >= 1);
    }
}
