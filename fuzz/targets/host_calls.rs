//! The host functions, called by a guest module in whatever order and with whatever arguments
//! the fuzzer's bytes say (tests/guests/host-call-script interprets them as a script of calls).
//! Every run must end with an aggregate: a call the host refuses ends that customer's unit, never
//! the host; and nothing a script contributes may leave the aggregate unbounded.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use strongroom::dataset::Dataset;
use strongroom::guest_boundary::sandbox::EngineSettings;
use strongroom::guest_boundary::{PreparedModule, RunContext, RunLimits, Sandbox, vet};
use strongroom_synthetic as synthetic;

struct Guest {
    sandbox: Sandbox,
    module: PreparedModule,
    dataset: Arc<Dataset>,
}

fn guest() -> &'static Guest {
    static G: OnceLock<Guest> = OnceLock::new();
    G.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests");
        let out = strongroom_contract::toolchain::build_guest_workspace(&dir, false)
            .unwrap_or_else(|e| panic!("building the guests: {e}"));
        let bytes = std::fs::read(out.join("host_call_script.wasm")).expect("the guest");
        let sandbox = Sandbox::new(&EngineSettings::default()).expect("engine");
        let module = sandbox
            .prepare(vet(&bytes, 16 << 20).expect("vetted"), None)
            .expect("prepared");
        let dataset = Arc::new(synthetic::generate(4, 3.0, 11).dataset());
        Guest {
            sandbox,
            module,
            dataset,
        }
    })
}

fuzz_target!(init: {
    guest();
    strongroom_fuzz::seed(
        "host_calls",
        &[
            ("sdk", vec![7, 7]),
            ("reads", vec![4, 0, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5, 1]),
            ("contribute", vec![6, 0, 2, 1, 0, 0, 0, 2, 0, 0, 0, 2, 3, 4, 0, 1, 3]),
        ],
    );
}, |data: &[u8]| {
    let g = guest();
    let parameters: Vec<(String, String)> = data
        .chunks(128)
        .take(32)
        .enumerate()
        .map(|(i, c)| {
            (
                format!("s{i:02}"),
                c.iter().map(|b| format!("{b:02x}")).collect(),
            )
        })
        .collect();
    let limits = RunLimits {
        fuel_per_entity: 5_000_000,
        ..RunLimits::default()
    };
    let ctx = RunContext::new(
        Arc::clone(&g.dataset),
        g.module.module.manifest.clone(),
        g.module.module.manifest.mode,
        limits,
        [1; 32],
    )
    .expect("admitted")
    .with_parameters(&parameters)
    .expect("parameters");
    let report = g.sandbox.run(&g.module, Arc::new(ctx), 1);
    assert_eq!(
        report.partner_outcome(),
        "completed",
        "{:?}: {:?}",
        report.outcome,
        report.detail
    );
    let aggregate = report.aggregate.expect("an aggregate");
    let text = format!("{aggregate:?}");
    assert!(
        !text.contains("NaN") && !text.contains("inf"),
        "an unbounded value reached the aggregate: {text}"
    );
});
