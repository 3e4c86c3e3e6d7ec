//! Vetting: modules that must be refused before anything runs, each with the error that names
//! what is wrong. Components are written here in WebAssembly text, so every byte is reviewable.

use strongroom::guest_boundary::{Outcome, RunLimits, VettingError, vet};
use strongroom_contract::manifest::{Manifest as HostManifest, ManifestError};
use strongroom_guest::{
    ColumnSpec, ColumnType, Domain, Manifest, Metric, Mode, TableRead, manifest,
};
use strongroom_tests::{example, prepare, run, small_bank};

const CAP: usize = 16 << 20;

const BY_MCC: &[Domain] = &[Domain::column("transactions", "mcc_group")];
const TEST_MANIFEST: Manifest = Manifest {
    name: "wat-module",
    version: "0.1.0",
    mode: Mode::Isolated,
    reads: &[TableRead {
        table: "transactions",
        columns: &[ColumnSpec {
            name: "mcc_group",
            ty: ColumnType::Category,
        }],
    }],
    metrics: &[Metric::count("n", BY_MCC)],
    max_groups_per_entity: 4,
};

/// A WAT string literal holding `bytes`.
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A component exporting `run: func() -> result<_, string>` from a core module with `body`
/// (core module fields), an optional manifest section, and the export named `export`.
fn component(body: &str, manifest: Option<&[u8]>, export: &str) -> Vec<u8> {
    let section = manifest
        .map(|m| format!("(@custom \"strongroom-manifest\" \"{}\")", wat_bytes(m)))
        .unwrap_or_default();
    let text = format!(
        r#"(component
  (core module $m
    {body}
    {section}
  )
  (core instance $i (instantiate $m))
  (func (export "{export}") (result (result (error string)))
    (canon lift (core func $i "run") (memory (core memory $i "memory"))))
)"#
    );
    wat::parse_str(&text)
        .unwrap_or_else(|e| panic!("test component does not assemble: {e}\n{text}"))
}

const OK_BODY: &str = r#"(memory (export "memory") 1)
    (func (export "run") (result i32) (i32.const 0))"#;

fn manifest_bytes() -> Vec<u8> {
    manifest::to_vec(&TEST_MANIFEST)
}

#[test]
fn a_minimal_well_formed_component_passes() {
    let module = vet(&component(OK_BODY, Some(&manifest_bytes()), "run"), CAP).expect("accepted");
    assert_eq!(module.manifest.name, "wat-module");
    assert!(module.imports.is_empty());
}

#[test]
fn too_large_is_refused() {
    let bytes = component(OK_BODY, Some(&manifest_bytes()), "run");
    assert!(matches!(
        vet(&bytes, 10),
        Err(VettingError::TooLarge { max: 10, .. })
    ));
}

#[test]
fn a_core_module_is_refused() {
    let core = wat::parse_str(r#"(module (func (export "run")))"#).expect("assembles");
    let err = vet(&core, CAP).expect_err("refused");
    assert!(matches!(err, VettingError::NotAComponent(_)));
    assert!(err.to_string().contains("core module"), "{err}");
}

#[test]
fn the_wrong_export_is_refused() {
    let err = vet(&component(OK_BODY, Some(&manifest_bytes()), "go"), CAP).err();
    assert_eq!(err, Some(VettingError::MissingRun("go".into())));
}

#[test]
fn a_missing_manifest_is_refused() {
    assert_eq!(
        vet(&component(OK_BODY, None, "run"), CAP).err(),
        Some(VettingError::NoManifest)
    );
}

#[test]
fn a_malformed_manifest_is_refused_with_its_offset() {
    let mut bytes = manifest_bytes();
    bytes.truncate(bytes.len() - 3);
    match vet(&component(OK_BODY, Some(&bytes), "run"), CAP) {
        Err(VettingError::Manifest(ManifestError::Malformed { offset, .. })) => assert!(offset > 5),
        other => panic!("expected a malformed manifest, got {other:?}"),
    }
}

#[test]
fn every_truncation_of_a_manifest_is_an_error_never_a_panic() {
    const M: Manifest = Manifest {
        metrics: &[
            Metric::sum("s", BY_MCC, -5.0, 5.0),
            Metric::mean(
                "m",
                &[Domain::enumeration("band", &["low", "high"])],
                0.0,
                1.0,
            ),
        ],
        ..TEST_MANIFEST
    };
    let bytes = manifest::to_vec(&M);
    assert!(HostManifest::decode(&bytes).is_ok());
    for len in 0..bytes.len() {
        assert!(
            HostManifest::decode(&bytes[..len]).is_err(),
            "truncated to {len} bytes was accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(
        HostManifest::decode(&longer).is_err(),
        "trailing bytes accepted"
    );
}

#[test]
fn the_sdk_encoding_round_trips_through_the_host_decoder() {
    const M: Manifest = Manifest {
        metrics: &[
            Metric::sum("spend", BY_MCC, 0.0, 250.5)
                .max_contributions_per_group(7)
                .decimals(3),
            Metric::count(
                "n",
                &[
                    Domain::enumeration("band", &["a", "b", "c"]),
                    Domain::column("transactions", "mcc_group"),
                ],
            ),
        ],
        ..TEST_MANIFEST
    };
    let decoded = HostManifest::decode(&manifest::to_vec(&M)).expect("decodes");
    assert_eq!(decoded.metrics.len(), 2);
    let spend = &decoded.metrics[0];
    assert_eq!(
        (
            spend.lower,
            spend.upper,
            spend.decimals,
            spend.max_contributions_per_group
        ),
        (0.0, 250.5, 3, 7)
    );
    assert_eq!(decoded.metrics[1].key.len(), 2);
    assert_eq!(
        decoded.reads[0].columns,
        vec![(
            "mcc_group".to_string(),
            strongroom::dataset::ColumnType::Category
        )]
    );
}

#[test]
fn a_group_key_on_a_non_category_column_is_refused() {
    const M: Manifest = Manifest {
        reads: &[TableRead {
            table: "transactions",
            columns: &[ColumnSpec {
                name: "amount",
                ty: ColumnType::Float,
            }],
        }],
        metrics: &[Metric::count(
            "n",
            &[Domain::column("transactions", "amount")],
        )],
        ..TEST_MANIFEST
    };
    let bytes = manifest::to_vec(&M);
    let err = HostManifest::decode(&bytes).expect_err("refused");
    assert!(
        err.to_string()
            .contains("only category dictionaries are public domains"),
        "{err}"
    );
}

fn refused_feature(body: &str, needle: &str) {
    let err = vet(&component(body, Some(&manifest_bytes()), "run"), CAP).expect_err("refused");
    assert!(matches!(err, VettingError::Invalid(_)), "{err:?}");
    assert!(
        err.to_string().contains(needle),
        "expected '{needle}' in: {err}"
    );
}

#[test]
fn memory64_is_refused() {
    refused_feature(
        r#"(memory (export "memory") i64 1)
    (func (export "run") (result i32) (i32.const 0))"#,
        "memory64",
    );
}

#[test]
fn multiple_memories_are_refused() {
    refused_feature(
        r#"(memory (export "memory") 1) (memory $second 1)
    (func (export "run") (result i32) (i32.const 0))"#,
        "multiple memories",
    );
}

#[test]
fn shared_memory_threads_are_refused() {
    refused_feature(
        r#"(memory (export "memory") 1 1 shared)
    (func (export "run") (result i32) (i32.const 0))"#,
        "threads",
    );
}

#[test]
fn tail_calls_are_refused() {
    refused_feature(
        r#"(memory (export "memory") 1)
    (func $f (result i32) (return_call $f))
    (func (export "run") (result i32) (i32.const 0))"#,
        "tail calls",
    );
}

/// A guest that allocates through many tables: grows its table until refused, then traps.
#[test]
fn table_growth_hits_the_table_limit_and_the_host_keeps_serving() {
    let body = r#"(memory (export "memory") 1)
    (table $t 1 funcref)
    (func (export "run") (result i32)
      (block $refused
        (loop $again
          (br_if $refused (i32.eq (table.grow $t (ref.null func) (i32.const 4096)) (i32.const -1)))
          (br $again)))
      unreachable)"#;
    let module = prepare(&component(body, Some(&manifest_bytes()), "run"));
    let data = small_bank(10);
    let report = run(&module, &data, RunLimits::default());
    assert_eq!(report.outcome, Outcome::TableLimit);
    let normal = prepare(&example("spend-by-category"));
    assert_eq!(
        run(&normal, &data, RunLimits::default()).outcome,
        Outcome::Completed
    );
}

/// `component` with one more export: an instance named `exports` holding `functions` (each the
/// same lifted function), as componentize-py leaves its pre-initialisation interface.
fn with_exports_instance(functions: &[&str]) -> Vec<u8> {
    let section = format!(
        "(@custom \"strongroom-manifest\" \"{}\")",
        wat_bytes(&manifest_bytes())
    );
    let exports: String = functions
        .iter()
        .map(|f| format!("(export \"{f}\" (func $f))"))
        .collect();
    let text = format!(
        r#"(component
  (core module $m
    {OK_BODY}
    {section}
  )
  (core instance $i (instantiate $m))
  (func (export "run") (result (result (error string)))
    (canon lift (core func $i "run") (memory (core memory $i "memory"))))
  (func $f (result (result (error string)))
    (canon lift (core func $i "run") (memory (core memory $i "memory"))))
  (instance $e {exports})
  (export "exports" (instance $e))
)"#
    );
    wat::parse_str(&text)
        .unwrap_or_else(|e| panic!("test component does not assemble: {e}\n{text}"))
}

#[test]
fn componentize_pys_leftover_export_is_accepted_only_in_its_exact_shape() {
    use strongroom::guest_boundary::toolchain::Toolchain;
    let module = vet(&with_exports_instance(&["init"]), CAP).expect("accepted");
    assert_eq!(module.toolchain, Toolchain::Python);
    // Anything more, or another name, is an export outside the world, as before.
    for functions in [&["init", "steal"][..], &["setup"][..], &[][..]] {
        assert_eq!(
            vet(&with_exports_instance(functions), CAP).err(),
            Some(VettingError::UnexpectedExport("exports".into())),
            "{functions:?}"
        );
    }
    // A plain module is not taken for a Python one.
    let plain = vet(&component(OK_BODY, Some(&manifest_bytes()), "run"), CAP).expect("accepted");
    assert_eq!(plain.toolchain, Toolchain::Other);
    assert_eq!(
        vet(&example("spend-by-category"), CAP)
            .expect("accepted")
            .toolchain,
        Toolchain::Rust
    );
}
