//! A partition's partial coming back as bytes (from another process or machine): the decoder
//! never panics or allocates past the bytes present, and whatever it accepts is canonical (it
//! encodes back to exactly the bytes given).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strongroom::guest_boundary::executor::Partial;
use strongroom::guest_boundary::outcome::Outcome;
use strongroom::guest_boundary::partial_wire::{decode, encode};
use strongroom::output_gate::{Accumulator, Aggregator, BoundingStats, GroupKey};
use strongroom_contract::manifest::declare::{self, Domain, Metric, TableRead, to_vec};
use strongroom_contract::manifest::{Manifest, Mode};

const CAP: usize = 4096;

/// A manifest with a one-part and a two-part group key.
fn manifest() -> &'static Manifest {
    static M: OnceLock<Manifest> = OnceLock::new();
    M.get_or_init(|| {
        const KEY1: &[Domain] = &[Domain::enumeration("band", &["a", "b", "c"])];
        const KEY2: &[Domain] = &[
            Domain::enumeration("band", &["a", "b", "c"]),
            Domain::enumeration("month", &["jan", "feb"]),
        ];
        const METRICS: &[Metric] = &[
            Metric::sum("spend", KEY1, 0.0, 100.0),
            Metric::count("visits", KEY2).max_contributions_per_group(3),
        ];
        let declared = declare::Manifest {
            name: "fuzz",
            version: "1",
            mode: Mode::Isolated,
            reads: &[] as &[TableRead],
            metrics: METRICS,
            max_groups_per_entity: 4,
        };
        Manifest::decode(&to_vec(&declared)).expect("a valid manifest")
    })
}

/// A partial with groups in both metrics, failures of three kinds and some output.
fn sample() -> Vec<u8> {
    let m = manifest();
    let group = |parts: &[u32], entities, contributions, sum| {
        (
            GroupKey::new(parts),
            Accumulator {
                entities,
                contributions,
                sum,
            },
        )
    };
    let mut partial = Partial::new(m, CAP);
    partial.aggregator = Aggregator::from_parts(
        vec![
            vec![group(&[0], 3, 3, 4_200), group(&[2], 1, 1, -7)],
            vec![group(&[1, 0], 2, 5, 0)],
        ],
        BoundingStats {
            dropped_over_group_limit: 1,
            dropped_over_contribution_limit: 2,
            clamped: 3,
        },
        4,
    );
    partial.units = 6;
    partial.fuel_consumed = 12_345;
    partial.fail(5, Outcome::Trap("unreachable".into()), "at 0x12".into());
    partial.fail(2, Outcome::OutOfFuel, String::new());
    partial.fail(9, Outcome::ContractViolation("key".into()), "detail".into());
    partial.output(b"out", b"err");
    encode(&partial, m)
}

fuzz_target!(init: {
    strongroom_fuzz::seed("partial_bytes", &[("sample", sample())]);
}, |data: &[u8]| {
    let m = manifest();
    if let Ok(partial) = decode(data, m, CAP) {
        assert_eq!(encode(&partial, m), data, "what decodes is canonical");
    }
});
