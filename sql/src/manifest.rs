//! The manifest a plan derives: what the room checks and bounds the engine's cells by, exactly
//! as it would a module's own.

use strongroom_contract::manifest::ColumnType as ContractType;
use strongroom_contract::manifest::{
    Domain as ContractDomain, Manifest, ManifestError, Metric as ContractMetric,
    MetricKind as ContractKind, Mode, TableRead as ContractRead,
};
use strongroom_sql_plan::{ColumnType, Domain, MetricKind, Plan};

/// The manifest of `plan`, checked by the contract's rules.
pub fn manifest_of(plan: &Plan) -> Result<Manifest, ManifestError> {
    let key: Vec<ContractDomain> = plan
        .domains
        .iter()
        .map(|d| match d {
            Domain::Column { table, column } => ContractDomain::Column {
                table: table.clone(),
                column: column.clone(),
            },
            Domain::Enumeration { name, members } => ContractDomain::Enumeration {
                name: name.clone(),
                members: members.clone(),
            },
        })
        .collect();
    let manifest = Manifest {
        name: plan.name.clone(),
        version: format!("plan-{}", plan.version),
        mode: Mode::Isolated,
        max_groups_per_entity: plan.max_groups_per_entity,
        reads: plan
            .tables
            .iter()
            .map(|t| ContractRead {
                table: t.table.clone(),
                columns: t
                    .columns
                    .iter()
                    .map(|(c, ty)| (c.clone(), column_type(*ty)))
                    .collect(),
            })
            .collect(),
        metrics: plan
            .metrics
            .iter()
            .map(|m| ContractMetric {
                name: m.name.clone(),
                kind: match m.kind {
                    MetricKind::Sum => ContractKind::Sum,
                    MetricKind::Count => ContractKind::Count,
                    MetricKind::Mean => ContractKind::Mean,
                    MetricKind::Distinct => ContractKind::Distinct,
                },
                decimals: m.decimals,
                lower: m.lower,
                upper: m.upper,
                max_contributions_per_group: m.max_contributions_per_group,
                key: key.clone(),
            })
            .collect(),
    };
    manifest.check()?;
    Ok(manifest)
}

fn column_type(ty: ColumnType) -> ContractType {
    match ty {
        ColumnType::Int => ContractType::Int,
        ColumnType::Float => ContractType::Float,
        ColumnType::Bool => ContractType::Bool,
        ColumnType::Date => ContractType::Date,
        ColumnType::Category => ContractType::Category,
    }
}
