//! Vetting: what a module must pass before anything runs.
//!
//! A module is refused, with an error naming the offending item, when it is over the size cap,
//! is not a component, needs a WebAssembly feature the room turned off, imports anything outside
//! the allowed set, does not export the `strongroom:query` world's `run`, or carries no or a
//! malformed manifest.

use ring::digest;
use wasmparser::component_types::{ComponentEntityType, ComponentInstanceType, ComponentItem};
use wasmparser::{Encoding, KnownCustom, Parser, Payload, Validator, WasmFeatures};

use strongroom_contract::manifest::{Manifest, ManifestError, SECTION};

use super::toolchain::{COMPONENTIZE_PY_EXPORT, COMPONENTIZE_PY_INIT, Toolchain};

/// Default cap on a module's size: a Python module (CPython and its standard library, snapshotted
/// by componentize-py) is about 19 MB, a JavaScript one about 12 MB, a Rust one well under 1 MB.
/// A bank may set a lower cap per policy (`[limits] max_module_bytes`) and the service another
/// room-wide one (`strongroom serve --max-module-bytes`).
pub const DEFAULT_MAX_MODULE_BYTES: usize = 32 * 1024 * 1024;

/// The WebAssembly features a module may use: WebAssembly 2.0 (with SIMD) and the component
/// model. Everything else (memory64, multi-memory, threads, tail calls, relaxed SIMD, GC,
/// exceptions, stack switching, component-model async, ...) is off, here and in the engine.
pub fn allowed_features() -> WasmFeatures {
    WasmFeatures::WASM2
        | WasmFeatures::FLOATS
        | WasmFeatures::EXTENDED_CONST
        | WasmFeatures::COMPONENT_MODEL
}

/// Interfaces a module may import, by name without version. The `strongroom:query` interfaces
/// are the contract; the WASI ones are virtual (see `wasi.rs`): captured stdio, an empty
/// environment, frozen clocks, seeded randomness. No filesystem, sockets, HTTP or polling.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "strongroom:query/types",
    "strongroom:query/schema",
    "strongroom:query/data",
    "strongroom:query/contribute",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/streams",
    "wasi:io/poll",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    // What language toolchains always import, answered without reaching outside (wasi.rs):
    // a filesystem with no preopened directory, sockets that refuse to be made.
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
];

/// Versions of the interfaces above that the room implements.
const ALLOWED_VERSIONS: &[(&str, &str)] = &[
    ("strongroom:query/", "0.1.0"),
    ("strongroom:query/", "0.2.0"),
    ("wasi:", "0.2."),
];

/// Types a world imports at its top level (version 0.2's `run` names them).
const WORLD_TYPES: &[&str] = &["entities", "cells"];

/// Which version of the `strongroom:query` world a module was built against; the room accepts
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Abi {
    /// 0.1: `run()` pulls rows and pushes contributions one by one.
    V0_1,
    /// 0.2: `run(entities)` gets rows pushed and returns bounded cells.
    V0_2,
}

impl Abi {
    /// The version as the WIT package spells it.
    pub fn version(self) -> &'static str {
        match self {
            Abi::V0_1 => "0.1.0",
            Abi::V0_2 => "0.2.0",
        }
    }
}

impl std::fmt::Display for Abi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strongroom:query@{}", self.version())
    }
}

/// Why a module was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VettingError {
    /// Over the size cap.
    #[error("module is {size} bytes, over the cap of {max} bytes")]
    TooLarge {
        /// Module size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// A core module or something that is not WebAssembly at all.
    #[error("not a WebAssembly component: {0} (build with `cargo build --target wasm32-wasip2`)")]
    NotAComponent(String),
    /// Fails validation, typically because it needs a feature the room turned off.
    #[error("module does not validate with the room's WebAssembly features: {0}")]
    Invalid(String),
    /// Imports something outside the allowed set (all offending imports, comma-separated).
    #[error("module imports {0}, which a query module may not use")]
    ForbiddenImport(String),
    /// Does not export `run` from the `strongroom:query/query` world.
    #[error("module does not export `run` (the strongroom:query world); exports found: {0}")]
    MissingRun(String),
    /// Exports something besides `run`.
    #[error("module exports '{0}', which is not part of the strongroom:query world")]
    UnexpectedExport(String),
    /// No `strongroom-manifest` custom section.
    #[error(
        "module carries no manifest (custom section `strongroom-manifest`): declare one with `strongroom_guest::query!`"
    )]
    NoManifest,
    /// More than one manifest section.
    #[error("module carries {0} manifest sections; exactly one is allowed")]
    DuplicateManifest(usize),
    /// The manifest is malformed or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Parts of the module were built against different versions of the world.
    #[error("module mixes versions of the strongroom:query world: {0}")]
    MixedVersions(String),
    /// A metric's bounds do not fit the 64-bit fixed-point sums of version 0.2 cells.
    #[error(
        "metric '{0}': max_contributions_per_group x its largest bound x 10^decimals must stay below 2^63 for strongroom:query@0.2.0 cells; lower its bounds or decimals"
    )]
    CellSumRange(String),
}

/// A module that passed vetting.
#[derive(Debug, Clone)]
pub struct VettedModule {
    /// The component bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes: the module's identity everywhere (approvals, cache, receipts).
    pub hash: [u8; 32],
    /// The decoded manifest.
    pub manifest: Manifest,
    /// Imported interfaces, as found.
    pub imports: Vec<String>,
    /// Imported functions, as `interface#function`.
    pub functions: Vec<String>,
    /// The version of the world it was built against.
    pub abi: Abi,
    /// The toolchain the module says built it (its limits follow from it).
    pub toolchain: Toolchain,
}

impl VettedModule {
    /// The hash in lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

fn import_allowed(name: &str) -> bool {
    let (base, version) = match name.split_once('@') {
        Some((base, version)) => (base, version),
        None => return false,
    };
    ALLOWED_IMPORTS.contains(&base)
        && ALLOWED_VERSIONS
            .iter()
            .any(|(prefix, v)| base.starts_with(prefix) && version.starts_with(v))
}

/// The world version a module was built against: its `run` export takes the entities of a call
/// (0.2) or nothing (0.1), and every `strongroom:query` interface it imports has that version.
fn abi_of(types: &wasmparser::types::Types, imports: &[String]) -> Result<Abi, VettingError> {
    let run = match types.component_item_for_export("run") {
        Some(ComponentItem {
            ty: ComponentEntityType::Func(id),
            ..
        }) => &types[*id],
        _ => return Err(VettingError::MissingRun("run is not a function".into())),
    };
    let abi = if run.params.is_empty() {
        Abi::V0_1
    } else {
        Abi::V0_2
    };
    let suffix = format!("@{}", abi.version());
    if let Some(other) = imports
        .iter()
        .find(|name| name.starts_with("strongroom:query/") && !name.ends_with(&suffix))
    {
        return Err(VettingError::MixedVersions(format!(
            "its `run` is {abi}'s, and it imports {other}"
        )));
    }
    Ok(abi)
}

/// Vets `bytes` as a query module.
pub fn vet(bytes: &[u8], max_module_bytes: usize) -> Result<VettedModule, VettingError> {
    if bytes.len() > max_module_bytes {
        return Err(VettingError::TooLarge {
            size: bytes.len(),
            max: max_module_bytes,
        });
    }
    if !Parser::is_component(bytes) {
        let what = if Parser::is_core_wasm(bytes) {
            "this is a core module"
        } else {
            "no WebAssembly header"
        };
        return Err(VettingError::NotAComponent(what.into()));
    }
    let types = Validator::new_with_features(allowed_features())
        .validate_all(bytes)
        .map_err(|e| VettingError::Invalid(e.to_string()))?;

    let mut depth = 0usize;
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut manifests = Vec::new();
    let (mut processed_by, mut languages) = (Vec::new(), Vec::new());
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| VettingError::Invalid(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                depth += 1;
                if depth == 1 && encoding != Encoding::Component {
                    return Err(VettingError::NotAComponent("this is a core module".into()));
                }
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| VettingError::Invalid(e.to_string()))?;
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| VettingError::Invalid(e.to_string()))?;
                    exports.push(export.name.name.to_string());
                }
            }
            Payload::CustomSection(reader) if reader.name() == SECTION => {
                // The format puts it in a core module (docs/formats/manifest.md): one at the
                // component's own level is not where any encoder of ours writes it.
                if depth == 1 {
                    return Err(VettingError::Invalid(format!(
                        "the `{SECTION}` section is at the component's top level; it belongs in a core module (`strongroom module embed-manifest` puts it there)"
                    )));
                }
                manifests.push(reader.data().to_vec());
            }
            Payload::CustomSection(reader) => {
                // Which toolchain built it (limits follow); an unreadable producers section
                // claims nothing.
                if let KnownCustom::Producers(fields) = reader.as_known() {
                    for field in fields.into_iter().flatten() {
                        let into = match field.name {
                            "processed-by" => &mut processed_by,
                            "language" => &mut languages,
                            _ => continue,
                        };
                        into.extend(
                            field
                                .values
                                .into_iter()
                                .flatten()
                                .map(|v| v.name.to_string()),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    // A world's own types (0.2's `entities` and `cells`, named by its `run`) are imported as
    // types: they carry no function and reach nothing, so they are not interfaces to vet. Only
    // the names the room's world declares are accepted as such.
    imports.retain(|name| {
        let is_type = matches!(
            types.component_item_for_import(name),
            Some(ComponentItem {
                ty: ComponentEntityType::Type { .. },
                ..
            })
        );
        !(is_type && WORLD_TYPES.contains(&name.as_str()))
    });
    let forbidden: Vec<&str> = imports
        .iter()
        .filter(|name| !import_allowed(name))
        .map(String::as_str)
        .collect();
    if !forbidden.is_empty() {
        return Err(VettingError::ForbiddenImport(forbidden.join(", ")));
    }
    let mut functions = Vec::new();
    for name in &imports {
        let base = name.split_once('@').map_or(name.as_str(), |(b, _)| b);
        if let Some(ComponentItem {
            ty: ComponentEntityType::Instance(id),
            ..
        }) = types.component_item_for_import(name)
        {
            let instance: &ComponentInstanceType = &types[*id];
            for (func, item) in &instance.exports {
                if matches!(item.ty, ComponentEntityType::Func(_)) {
                    functions.push(format!("{base}#{func}"));
                }
            }
        }
    }
    if !exports.iter().any(|e| e == "run") {
        return Err(VettingError::MissingRun(if exports.is_empty() {
            "none".into()
        } else {
            exports.join(", ")
        }));
    }
    // componentize-py leaves its pre-initialisation interface exported: exactly that shape is
    // known, and the room never calls anything but `run`.
    let componentize_py =
        exports.iter().any(|e| e == COMPONENTIZE_PY_EXPORT) && is_componentize_py_init(&types);
    let toolchain = Toolchain::detect(componentize_py, &processed_by, &languages);
    if componentize_py {
        exports.retain(|e| e != COMPONENTIZE_PY_EXPORT);
    }
    if let Some(extra) = exports.iter().find(|e| e.as_str() != "run") {
        return Err(VettingError::UnexpectedExport(extra.clone()));
    }
    let abi = abi_of(&types, &imports)?;
    let manifest = match manifests.len() {
        0 => return Err(VettingError::NoManifest),
        1 => Manifest::decode(&manifests[0])?,
        n => return Err(VettingError::DuplicateManifest(n)),
    };
    if abi == Abi::V0_2 {
        for m in &manifest.metrics {
            let bound = m.lower.abs().max(m.upper.abs()) * 10f64.powi(i32::from(m.decimals));
            if bound * f64::from(m.max_contributions_per_group) >= 9.2e18 {
                return Err(VettingError::CellSumRange(m.name.clone()));
            }
        }
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    Ok(VettedModule {
        bytes: bytes.to_vec(),
        hash,
        manifest,
        imports,
        functions,
        abi,
        toolchain,
    })
}

/// Whether the component's `exports` export is componentize-py's pre-initialisation interface:
/// an instance with one function, `init`, and nothing else.
fn is_componentize_py_init(types: &wasmparser::types::Types) -> bool {
    let Some(ComponentItem {
        ty: ComponentEntityType::Instance(id),
        ..
    }) = types.component_item_for_export(COMPONENTIZE_PY_EXPORT)
    else {
        return false;
    };
    let instance: &ComponentInstanceType = &types[*id];
    let functions: Vec<&str> = instance
        .exports
        .iter()
        .filter(|(_, item)| !matches!(item.ty, ComponentEntityType::Type { .. }))
        .map(|(name, item)| match item.ty {
            ComponentEntityType::Func(_) => name.as_str(),
            _ => "",
        })
        .collect();
    functions == [COMPONENTIZE_PY_INIT]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_names_need_an_allowed_interface_and_version() {
        assert!(import_allowed("strongroom:query/data@0.1.0"));
        assert!(import_allowed("wasi:cli/stdout@0.2.3"));
        assert!(!import_allowed("wasi:cli/stdout"));
        assert!(import_allowed("wasi:filesystem/types@0.2.3"));
        assert!(import_allowed("wasi:sockets/tcp@0.2.3"));
        assert!(!import_allowed("wasi:http/outgoing-handler@0.2.3"));
        assert!(!import_allowed("wasi:http/types@0.2.3"));
        assert!(!import_allowed("wasi:cli/stdout@0.3.0"));
        assert!(!import_allowed("strongroom:query/data@9.9.9"));
    }

    #[test]
    fn a_manifest_at_the_component_level_is_refused() {
        // A component whose only content is a manifest section at its own level.
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        let name = SECTION.as_bytes();
        let data = b"SRMF";
        component.push(0);
        component.push((1 + name.len() + data.len()) as u8);
        component.push(name.len() as u8);
        component.extend_from_slice(name);
        component.extend_from_slice(data);
        match vet(&component, 1024) {
            Err(VettingError::Invalid(why)) => assert!(why.contains("top level"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn refuses_non_components() {
        assert!(matches!(
            vet(b"hello", 1024),
            Err(VettingError::NotAComponent(_))
        ));
        assert!(matches!(
            vet(b"\0asm\x01\0\0\0", 1024),
            Err(VettingError::NotAComponent(_))
        ));
        assert!(matches!(
            vet(&[0u8; 2048], 1024),
            Err(VettingError::TooLarge { .. })
        ));
    }
}
