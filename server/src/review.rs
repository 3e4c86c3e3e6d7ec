//! What the bank reviews before deciding on a module (`GET /v1/modules/{sha256}`): the vetted
//! module's hash, size, mode, imports, reads and metrics, and what changed since the last module
//! of the same name it approved for the same partner.

use strongroom::guest_boundary::vetting::VettedModule;
use strongroom_api::{ModuleChanges, ModuleDetail, ModuleMetric, ModuleRead};
use strongroom_contract::manifest::{Domain, Manifest};

/// The module's reads, `name: type` per column.
fn reads(m: &Manifest) -> Vec<ModuleRead> {
    m.reads
        .iter()
        .map(|r| ModuleRead {
            table: r.table.clone(),
            columns: r.columns.iter().map(|(c, t)| format!("{c}: {t}")).collect(),
        })
        .collect()
}

/// A group key's part: a column, or an enumeration with its members.
fn key_part(d: &Domain) -> String {
    match d {
        Domain::Column { table, column } => format!("{table}.{column}"),
        Domain::Enumeration { name, members } => format!("{name} [{}]", members.join(", ")),
    }
}

fn metrics(m: &Manifest) -> Vec<ModuleMetric> {
    m.metrics
        .iter()
        .map(|x| ModuleMetric {
            name: x.name.clone(),
            kind: x.kind.to_string(),
            key: x.key.iter().map(key_part).collect(),
            lower: x.lower,
            upper: x.upper,
            decimals: x.decimals,
            max_contributions_per_group: x.max_contributions_per_group,
        })
        .collect()
}

/// The host functions a module imports, each with its interface's version
/// (`strongroom:query/data@0.2.0#read`): a rebuild against another contract version shows.
fn imports(module: &VettedModule) -> Vec<String> {
    module
        .functions
        .iter()
        .map(|f| {
            let (interface, function) = f.split_once('#').unwrap_or((f.as_str(), ""));
            let versioned = module
                .imports
                .iter()
                .find(|i| {
                    i.strip_prefix(interface)
                        .is_some_and(|rest| rest.starts_with('@'))
                })
                .map_or(interface, String::as_str);
            format!("{versioned}#{function}")
        })
        .collect()
}

/// The detail of a vetted module (without the previous approval, filled in by the caller).
pub(crate) fn detail(
    module: &VettedModule,
    partner: &str,
    uploaded_at: String,
    decision: Option<String>,
) -> ModuleDetail {
    let m = &module.manifest;
    ModuleDetail {
        module_sha256: module.hash_hex(),
        partner: partner.to_string(),
        name: m.name.clone(),
        version: m.version.clone(),
        mode: m.mode.to_string(),
        size: module.bytes.len() as u64,
        toolchain: module.toolchain.name().to_string(),
        fuel_per_customer: module.toolchain.limits().fuel_per_entity,
        uploaded_at,
        decision,
        imports: imports(module),
        reads: reads(m),
        max_groups_per_entity: m.max_groups_per_entity,
        metrics: metrics(m),
        previous_approved: None,
    }
}

/// Lines present in `new` and not in `old` (and the reverse), each prefixed with what it is.
fn set_changes(what: &str, old: &[String], new: &[String], out: &mut Vec<String>) {
    for x in new.iter().filter(|x| !old.contains(x)) {
        out.push(format!("{what} added: {x}"));
    }
    for x in old.iter().filter(|x| !new.contains(x)) {
        out.push(format!("{what} removed: {x}"));
    }
}

fn metric_line(x: &ModuleMetric) -> String {
    format!(
        "{} = {} by ({}), values in [{}, {}], {} decimals, up to {} per group per customer",
        x.name,
        x.kind,
        x.key.join(", "),
        x.lower,
        x.upper,
        x.decimals,
        x.max_contributions_per_group
    )
}

/// What changed from `old` (the approved module) to `new`, in words.
pub(crate) fn changes(old: &ModuleDetail, new: &ModuleDetail) -> ModuleChanges {
    let mut out = Vec::new();
    for (what, a, b) in [
        ("version", &old.version, &new.version),
        ("mode", &old.mode, &new.mode),
    ] {
        if a != b {
            out.push(format!("{what}: {a} -> {b}"));
        }
    }
    if old.max_groups_per_entity != new.max_groups_per_entity {
        out.push(format!(
            "groups per customer: {} -> {}",
            old.max_groups_per_entity, new.max_groups_per_entity
        ));
    }
    if old.size != new.size {
        out.push(format!("size: {} -> {} bytes", old.size, new.size));
    }
    let columns = |d: &ModuleDetail| -> Vec<String> {
        d.reads
            .iter()
            .flat_map(|r| r.columns.iter().map(move |c| format!("{}.{c}", r.table)))
            .collect()
    };
    set_changes("read", &columns(old), &columns(new), &mut out);
    let lines = |d: &ModuleDetail| -> Vec<String> { d.metrics.iter().map(metric_line).collect() };
    set_changes("metric", &lines(old), &lines(new), &mut out);
    set_changes("import", &old.imports, &new.imports, &mut out);
    ModuleChanges {
        module_sha256: old.module_sha256.clone(),
        version: old.version.clone(),
        changes: out,
    }
}
