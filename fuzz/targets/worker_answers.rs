//! What comes back from an engine and what a worker is handed: a worker's answer (an envelope)
//! and a partition spec. Neither decoder panics or allocates past the bytes present; an envelope
//! that decodes encodes back to exactly the bytes given, and a spec that parses writes back to
//! its canonical JSON, which parses to the same spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom::guest_boundary::limits::RunLimits;
use strongroom::remote::envelope::{Envelope, Status};
use strongroom::remote::spec::{CONTRACT_VERSION, PartitionSpec, TableChunks};

fn spec() -> PartitionSpec {
    PartitionSpec {
        contract: CONTRACT_VERSION,
        run: "job-1".into(),
        partition: 3,
        first_entity: 100,
        end_entity: 200,
        dataset: "/data/bank.sealed".into(),
        storage: None,
        dataset_sha256: "ab".repeat(32),
        chunks: vec![TableChunks {
            table: "customers".into(),
            chunks: vec![1, 2],
        }],
        module: "/stage/m.wasm".into(),
        module_sha256: "cd".repeat(32),
        limits: RunLimits::default(),
        parameters: vec![("region".into(), "west".into())],
        batched: false,
        threads: 1,
        coordinator: "127.0.0.1:7443".into(),
        room: "strongroom room public keys v1".into(),
    }
}

fuzz_target!(init: {
    let spec = spec();
    let answer = Envelope::new(Status::Partial, spec.digest(), 1, b"SRPT\x01".to_vec(), Some(&[7; 32]));
    let refusal = Envelope::new(Status::Refused, spec.digest(), 0, b"why".to_vec(), None);
    strongroom_fuzz::seed(
        "worker_answers",
        &[
            ("answer", answer.encode()),
            ("refusal", refusal.encode()),
            ("spec", spec.to_json().into_bytes()),
        ],
    );
}, |data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        assert_eq!(envelope.encode(), data, "what decodes is canonical");
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(spec) = PartitionSpec::parse(text)
    {
        let again = PartitionSpec::parse(&spec.to_json()).expect("its canonical form parses");
        assert_eq!(again, spec);
    }
});
