//! Partials leave the machine as canonical bytes and come back: a partition's partial encodes to
//! one byte string, decodes to the same partial, and partials decoded from bytes merge into the
//! run's exact report. Bytes that are not a partial of the run are refused, never trusted.

use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use strongroom::guest_boundary::executor::{Partial, partitions};
use strongroom::guest_boundary::partial_wire::{decode, digest, encode};
use strongroom::guest_boundary::sandbox::PARTITION_ENTITIES;
use strongroom::guest_boundary::{PreparedModule, RunContext, RunLimits};
use strongroom_contract::manifest::Mode;
use strongroom_tests::{example, hostile, prepare, sandbox, small_bank};

/// Every partition of an isolated run of `module` on `customers` customers, each run on its own.
fn partials(module: &PreparedModule, customers: usize) -> (Arc<RunContext>, Vec<Partial>) {
    let data = small_bank(customers);
    let ctx = Arc::new(
        RunContext::new(
            Arc::clone(&data),
            module.module.manifest.clone(),
            Mode::Isolated,
            RunLimits::default(),
            [7; 32],
        )
        .expect("admitted"),
    );
    let parts = partitions(data.span.clone(), PARTITION_ENTITIES)
        .into_iter()
        .map(|p| sandbox().run_partition(module, &ctx, p))
        .collect();
    (ctx, parts)
}

fn merged(ctx: &RunContext, parts: impl IntoIterator<Item = Partial>) -> Partial {
    let mut total = Partial::new(&ctx.manifest, ctx.limits.max_output_bytes);
    for p in parts {
        total.merge(p);
    }
    total
}

#[test]
fn partials_round_trip_through_their_bytes_and_merge_to_the_same_run() {
    // Customers with tenure 7 fail: the partials carry failures as well as groups.
    for module in [
        prepare(&example("spend-by-category")),
        prepare(&hostile("fail-on-target")),
    ] {
        let (ctx, parts) = partials(&module, 300);
        let manifest = &ctx.manifest;
        let cap = ctx.limits.max_output_bytes;
        let wire: Vec<Vec<u8>> = parts.iter().map(|p| encode(p, manifest)).collect();
        for bytes in &wire {
            let back = decode(bytes, manifest, cap).expect("decodes");
            assert_eq!(encode(&back, manifest), *bytes, "one partial, one encoding");
        }
        let direct = merged(&ctx, parts);
        let decoded = merged(
            &ctx,
            wire.iter()
                .map(|b| decode(b, manifest, cap).expect("decodes")),
        );
        let reversed = merged(
            &ctx,
            wire.iter()
                .rev()
                .map(|b| decode(b, manifest, cap).expect("decodes")),
        );
        let total = encode(&direct, manifest);
        // The merged partial is the same value, bytes and digest, whatever the merge order.
        assert_eq!(encode(&decoded, manifest), total);
        assert_eq!(digest(&encode(&reversed, manifest)), digest(&total));
        assert_eq!(decoded.failed_units, direct.failed_units);
        assert_eq!(decoded.first_failures, direct.first_failures);
        assert_eq!(
            decoded.aggregator.clone().finish(manifest),
            direct.aggregator.clone().finish(manifest)
        );
        assert!(direct.aggregator.finish(manifest).entities > 0);
    }
}

#[test]
fn bytes_that_are_not_a_partial_of_the_run_are_refused() {
    let module = prepare(&hostile("fail-on-target"));
    let (ctx, parts) = partials(&module, 200);
    let manifest = &ctx.manifest;
    let cap = ctx.limits.max_output_bytes;
    let total = encode(&merged(&ctx, parts), manifest);
    // Every truncation, a trailing byte, another version.
    for end in 0..total.len() {
        assert!(
            decode(&total[..end], manifest, cap).is_err(),
            "cut at {end}"
        );
    }
    let mut longer = total.clone();
    longer.push(0);
    assert!(
        decode(&longer, manifest, cap)
            .expect_err("refused")
            .to_string()
            .contains("after the end")
    );
    let mut version = total.clone();
    version[4] = 2;
    assert!(
        decode(&version, manifest, cap)
            .expect_err("refused")
            .to_string()
            .contains("version")
    );
    // A count of groups far past the bytes present is refused before anything is allocated.
    let mut huge = total.clone();
    huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(
        decode(&huge, manifest, cap)
            .expect_err("refused")
            .to_string()
            .contains("cannot fit")
    );
    // Another module's manifest: a different number of metrics.
    let other = prepare(&example("spend-by-category"));
    assert!(decode(&total, &other.module.manifest, cap).is_err());
    // Random corruption never panics and never decodes to a different canonical partial.
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    for _ in 0..2_000 {
        let mut bytes = total.clone();
        for _ in 0..1 + rng.next_u32() % 4 {
            let at = rng.next_u32() as usize % bytes.len();
            bytes[at] ^= 1 << (rng.next_u32() % 8);
        }
        if let Ok(p) = decode(&bytes, manifest, cap) {
            assert_eq!(encode(&p, manifest), bytes, "whatever decodes is canonical");
        }
    }
}

#[test]
fn a_failure_that_carries_a_text_its_code_has_not_is_refused() {
    // Found by fuzzing: a text on a code that carries none decoded, and encoded back without it.
    use strongroom::guest_boundary::Outcome;
    let module = prepare(&example("spend-by-category"));
    let manifest = &module.module.manifest;
    let mut partial = Partial::new(manifest, 1024);
    partial.fail(3, Outcome::ContractViolation("key".into()), "detail".into());
    let bytes = encode(&partial, manifest);
    assert!(decode(&bytes, manifest, 1024).is_ok());
    // "contribution_limit" is as long as "contract_violation": swap the failure's code alone.
    let at = bytes
        .windows(18)
        .rposition(|w| w == b"contract_violation")
        .expect("the failure's code");
    let mut forged = bytes.clone();
    forged[at..at + 18].copy_from_slice(b"contribution_limit");
    let refused = decode(&forged, manifest, 1024).expect_err("refused");
    assert!(refused.to_string().contains("with a text"), "{refused}");
}
