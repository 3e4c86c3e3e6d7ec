//! Recurses without end: must end in a stack overflow, not crash the host.
#![allow(unconditional_recursion)]

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

#[inline(never)]
fn descend(depth: u64) -> u64 {
    // Scalars only: the recursion lives on the wasm stack, not Rust's shadow stack in memory.
    std::hint::black_box(descend(std::hint::black_box(depth + 1))) ^ depth
}

fn run() -> Result<(), QueryError> {
    let total = descend(0);
    SPEND.add(&[0], total as f64);
    Ok(())
}
