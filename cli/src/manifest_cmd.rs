//! `strongroom module embed-manifest`: a manifest written in TOML, for modules built by
//! toolchains that cannot embed one (componentize-py, componentize-js, ...), encoded by the one
//! encoder of the format (`strongroom_contract::manifest::declare`) and placed where the format
//! says: a `strongroom-manifest` custom section in the component's first core module
//! (docs/formats/manifest.md).

use std::ops::Range;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;
use strongroom_contract::manifest::decode::{Domain, Manifest, Metric, TableRead};
use strongroom_contract::manifest::{ColumnType, MetricKind, Mode, SECTION, declare};
use wasmparser::{Encoding, Parser, Payload};

/// Longest string or list the file may hold (names, members, columns): the format stores
/// lengths in 16 bits, and no real manifest comes near.
const MAX_ITEMS: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    version: String,
    #[serde(default = "isolated")]
    mode: String,
    max_groups_per_entity: u32,
    #[serde(default)]
    reads: Vec<Read>,
    metrics: Vec<MetricFile>,
}

fn isolated() -> String {
    "isolated".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Read {
    table: String,
    columns: Vec<ColumnFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum KeyPart {
    /// `table.column`, a category column the module reads.
    Column(String),
    /// An enumeration declared here.
    Enumeration {
        enumeration: String,
        members: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricFile {
    name: String,
    kind: String,
    key: Vec<KeyPart>,
    lower: Option<f64>,
    upper: Option<f64>,
    decimals: Option<u8>,
    max_contributions_per_group: Option<u32>,
}

fn column_type(name: &str) -> anyhow::Result<ColumnType> {
    Ok(match name {
        "int" => ColumnType::Int,
        "float" => ColumnType::Float,
        "bool" => ColumnType::Bool,
        "date" => ColumnType::Date,
        "category" => ColumnType::Category,
        other => bail!("column type '{other}': use int, float, bool, date or category"),
    })
}

/// Reads the TOML file into the manifest it declares, with the SDK's defaults for what it leaves
/// out, checked as the room checks a decoded one.
pub(super) fn parse(text: &str) -> anyhow::Result<Manifest> {
    let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let too_long = |what: &str, n: usize| -> anyhow::Result<()> {
        if n > MAX_ITEMS {
            bail!("{what}: {n} is more than the format holds ({MAX_ITEMS})");
        }
        Ok(())
    };
    too_long("reads", file.reads.len())?;
    too_long("metrics", file.metrics.len())?;
    let mode = match file.mode.as_str() {
        "isolated" => Mode::Isolated,
        "table" => Mode::Table,
        other => bail!("mode '{other}': use isolated or table"),
    };
    let mut reads = Vec::new();
    for r in file.reads {
        too_long(&format!("table '{}'", r.table), r.columns.len())?;
        let mut columns = Vec::new();
        for c in r.columns {
            let ty = column_type(&c.ty).with_context(|| format!("{}.{}", r.table, c.name))?;
            columns.push((c.name, ty));
        }
        reads.push(TableRead {
            table: r.table,
            columns,
        });
    }
    let mut metrics = Vec::new();
    for m in file.metrics {
        let kind = match m.kind.as_str() {
            "sum" => MetricKind::Sum,
            "count" => MetricKind::Count,
            "mean" => MetricKind::Mean,
            "distinct" => MetricKind::Distinct,
            other => bail!(
                "metric '{}': kind '{other}': use sum, count, mean or distinct",
                m.name
            ),
        };
        // The SDK's defaults (docs/formats/manifest.md): a count's values are ignored (bounds
        // 0..1), a distinct metric's are 0..0 with one contribution; sums and means say theirs.
        let (lower, upper) = match (kind, m.lower, m.upper) {
            (MetricKind::Count, None, None) => (0.0, 1.0),
            (MetricKind::Distinct, None, None) => (0.0, 0.0),
            (_, Some(l), Some(u)) => (l, u),
            _ => bail!(
                "metric '{}': a {kind} needs both lower and upper (the bounds of one contribution)",
                m.name
            ),
        };
        let mut key = Vec::new();
        for part in m.key {
            key.push(match part {
                KeyPart::Column(text) => match text.split_once('.') {
                    Some((table, column)) => Domain::Column {
                        table: table.to_string(),
                        column: column.to_string(),
                    },
                    None => bail!(
                        "metric '{}': key part '{text}': write table.column, or {{ enumeration = \"name\", members = [...] }}",
                        m.name
                    ),
                },
                KeyPart::Enumeration {
                    enumeration,
                    members,
                } => {
                    too_long(&format!("enumeration '{enumeration}'"), members.len())?;
                    Domain::Enumeration {
                        name: enumeration,
                        members,
                    }
                }
            });
        }
        metrics.push(Metric {
            name: m.name,
            kind,
            decimals: m.decimals.unwrap_or(2),
            lower,
            upper,
            max_contributions_per_group: m.max_contributions_per_group.unwrap_or(1),
            key,
        });
    }
    let manifest = Manifest {
        name: file.name,
        version: file.version,
        mode,
        max_groups_per_entity: file.max_groups_per_entity,
        reads,
        metrics,
    };
    // Every string the format stores, each within what it holds.
    let mut texts: Vec<&str> = vec![&manifest.name, &manifest.version];
    for r in &manifest.reads {
        texts.push(&r.table);
        texts.extend(r.columns.iter().map(|(c, _)| c.as_str()));
    }
    for m in &manifest.metrics {
        texts.push(&m.name);
        for d in &m.key {
            match d {
                Domain::Column { table, column } => texts.extend([table.as_str(), column.as_str()]),
                Domain::Enumeration { name, members } => {
                    texts.push(name);
                    texts.extend(members.iter().map(String::as_str));
                }
            }
        }
    }
    for text in texts {
        if text.len() > MAX_ITEMS {
            bail!(
                "'{}...' is {} bytes long; a name holds at most {MAX_ITEMS}",
                text.chars().take(20).collect::<String>(),
                text.len()
            );
        }
    }
    manifest.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(manifest)
}

/// The section's bytes, by the one encoder, checked by decoding them back.
pub(super) fn encode(manifest: &Manifest) -> anyhow::Result<Vec<u8>> {
    let declared = declare::leaked(manifest);
    let len = declare::encoded_len(&declared);
    if len > 1 << 16 {
        bail!("the manifest encodes to {len} bytes; at most 65,536");
    }
    let bytes = declare::to_vec(&declared);
    let back = Manifest::decode(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    if &back != manifest {
        bail!("the manifest does not survive encoding (a bug: please report it)");
    }
    Ok(bytes)
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A section: its id, its length, its contents.
fn section(id: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    leb128(contents.len(), &mut out);
    out.extend_from_slice(contents);
    out
}

/// A custom section named `name` holding `data`.
fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
    let mut contents = Vec::new();
    leb128(name.len(), &mut contents);
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(data);
    section(0, &contents)
}

/// Where the section whose contents are `contents` starts: its id, then its length in LEB128,
/// minimally encoded (anything else is refused rather than guessed at).
fn section_start(bytes: &[u8], id: u8, contents: &Range<usize>) -> anyhow::Result<usize> {
    let mut header = vec![id];
    leb128(contents.len(), &mut header);
    let start = contents
        .start
        .checked_sub(header.len())
        .context("a section header is cut short")?;
    if bytes[start..contents.start] != header[..] {
        bail!(
            "a section's length is not minimally encoded; rebuild the module with a standard toolchain"
        );
    }
    Ok(start)
}

/// Where things are in a component, as byte ranges of section contents.
struct Layout {
    /// Its top-level core modules.
    modules: Vec<Range<usize>>,
    /// Manifest sections at the component's own level.
    top_manifests: Vec<Range<usize>>,
}

/// The component's top-level core modules and any manifest section at its own level.
fn layout(component: &[u8]) -> anyhow::Result<Layout> {
    let mut modules = Vec::new();
    let mut top_manifests = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        match payload.context("not a WebAssembly component")? {
            Payload::Version { encoding, .. } => {
                depth += 1;
                if depth == 1 && encoding != Encoding::Component {
                    bail!("this is a core module, not a component: build a component first");
                }
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ModuleSection {
                unchecked_range, ..
            } if depth == 1 => modules.push(unchecked_range),
            Payload::CustomSection(reader) if depth == 1 && reader.name() == SECTION => {
                top_manifests.push(reader.range());
            }
            _ => {}
        }
    }
    Ok(Layout {
        modules,
        top_manifests,
    })
}

/// `module` (a core module's bytes) without its manifest sections, and how many it had.
fn without_manifest(module: &[u8]) -> anyhow::Result<(Vec<u8>, usize)> {
    let mut cuts = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        if let Payload::CustomSection(reader) = payload.context("a core module does not parse")?
            && reader.name() == SECTION
        {
            let contents = reader.range();
            cuts.push(section_start(module, 0, &contents)?..contents.end);
        }
    }
    let mut out = Vec::with_capacity(module.len());
    let mut at = 0;
    for cut in &cuts {
        out.extend_from_slice(&module[at..cut.start]);
        at = cut.end;
    }
    out.extend_from_slice(&module[at..]);
    Ok((out, cuts.len()))
}

/// `component` with `section_bytes` as the manifest of its first core module. With `replace`,
/// manifests already there (in any top-level core module, or at the component's level) go;
/// without it, finding one is an error.
pub(super) fn embed(
    component: &[u8],
    section_bytes: &[u8],
    replace: bool,
) -> anyhow::Result<Vec<u8>> {
    let Layout {
        modules,
        top_manifests: top,
    } = layout(component)?;
    if modules.is_empty() {
        bail!("the component has no core module to carry the manifest");
    }
    let mut pieces: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    let mut found = top.len();
    for range in &top {
        pieces.push((section_start(component, 0, range)?..range.end, Vec::new()));
    }
    for (i, range) in modules.iter().enumerate() {
        let (mut module, had) = without_manifest(&component[range.clone()])?;
        found += had;
        if i == 0 {
            module.extend_from_slice(&custom_section(SECTION, section_bytes));
        }
        if had > 0 || i == 0 {
            let start = section_start(component, 1, range)?;
            pieces.push((start..range.end, section(1, &module)));
        }
    }
    if found > 0 && !replace {
        bail!(
            "the component already carries a manifest ({found} section(s)); pass --replace to put this one in its place"
        );
    }
    pieces.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(component.len() + section_bytes.len() + 32);
    let mut at = 0;
    for (range, bytes) in pieces {
        out.extend_from_slice(&component[at..range.start]);
        out.extend_from_slice(&bytes);
        at = range.end;
    }
    out.extend_from_slice(&component[at..]);
    Ok(out)
}

/// The command: reads the component and the TOML, writes the component with its manifest, and
/// vets the result as a room would.
pub(super) fn embed_manifest(
    module: &Path,
    manifest: &Path,
    out: Option<&Path>,
    replace: bool,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let declared = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", manifest.display()))?;
    let section_bytes = encode(&declared)?;
    let component =
        std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
    let embedded = embed(&component, &section_bytes, replace)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", module.display()))?;
    let vetted = strongroom::guest_boundary::vet(
        &embedded,
        strongroom::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES.max(embedded.len()),
    )
    .map_err(|e| anyhow::anyhow!("the module with this manifest would be refused: {e}"))?;
    let target = out.unwrap_or(module);
    // Written aside and renamed into place: the component is never half-written.
    let aside = target.with_extension("wasm.partial");
    if let Err(e) = std::fs::write(&aside, &embedded).and_then(|()| std::fs::rename(&aside, target))
    {
        let _ = std::fs::remove_file(&aside);
        return Err(anyhow::Error::new(e).context(format!("cannot write {}", target.display())));
    }
    println!(
        "embedded the manifest of {} {} ({} bytes) in {}; sha256 {}",
        declared.name,
        declared.version,
        section_bytes.len(),
        target.display(),
        vetted.hash_hex()
    );
    Ok(ExitCode::SUCCESS)
}
