//! SQL jobs in the room: the catalog a query compiles against (the dataset's shape, never its
//! rows), and the policy's rules for queries. A SQL job runs the bank-approved SQL engine module
//! with the plan the room compiled; everything after admission is a module job's path.

use strongroom_sql::plan::ColumnType;
use strongroom_sql::{Catalog, CatalogColumn, CatalogTable, Compiled};

use super::jobs::Refusal;
use super::policy::{Policy, SqlQueries};
use crate::dataset::{ColumnData, Dataset};

/// The tables and columns of `dataset` as a query sees them: names, types and public
/// dictionaries. Nothing here depends on the rows.
pub fn catalog(dataset: &Dataset) -> Catalog {
    Catalog {
        tables: dataset
            .tables
            .iter()
            .map(|t| CatalogTable {
                name: t.name.clone(),
                entity: t.hidden.entity.clone(),
                identifiers: t.hidden.identifiers.clone(),
                columns: t
                    .guest_columns
                    .iter()
                    .map(|c| CatalogColumn {
                        name: c.name.clone(),
                        ty: match c.data {
                            ColumnData::Int(_) => ColumnType::Int,
                            ColumnData::Float(_) => ColumnType::Float,
                            ColumnData::Bool(_) => ColumnType::Bool,
                            ColumnData::Date(_) => ColumnType::Date,
                            ColumnData::Category(_) => ColumnType::Category,
                        },
                        dictionary: c
                            .dictionary
                            .as_deref()
                            .map(<[String]>::to_vec)
                            .unwrap_or_default(),
                        min: None,
                        max: None,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Admits a SQL job under `policy`: the partner may send SQL, `engine_sha256` is the engine the
/// bank approved for it, the query compiles against the dataset's shape with the job's
/// parameters, and it is an approved template when the policy asks for one.
pub fn admit(
    policy: &Policy,
    text: &str,
    engine_sha256: &str,
    dataset: &Dataset,
    parameters: &[(String, String)],
) -> Result<Compiled, Refusal> {
    let Some(rules) = &policy.sql else {
        return Err(Refusal::SqlNotAllowed(format!(
            "the policy for '{}' on '{}' does not allow SQL (the bank adds an [sql] section naming its engine)",
            policy.partner, policy.dataset
        )));
    };
    if rules.engine_sha256 != engine_sha256 {
        return Err(Refusal::NotTheSqlEngine(format!(
            "SQL runs through the engine the bank approved ({}), not module {engine_sha256}",
            rules.engine_sha256
        )));
    }
    let compiled = strongroom_sql::compile(text, &catalog(dataset), parameters)
        .map_err(|e| Refusal::SqlRefused(e.to_string()))?;
    if rules.queries == SqlQueries::Templates && !rules.templates.contains(&compiled.query_sha256) {
        return Err(Refusal::TemplateNotApproved(format!(
            "the policy allows only approved query templates; this query's template hash is {} (strongroom sql explain prints it for the bank)",
            compiled.query_sha256
        )));
    }
    Ok(compiled)
}
