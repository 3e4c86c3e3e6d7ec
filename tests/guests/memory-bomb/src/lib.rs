//! Grows linear memory until it is refused: must end at the memory limit.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Reserve without zeroing, so the attack is about memory, not fuel.
        let mut block: Vec<u8> = Vec::with_capacity(4 << 20);
        block.push(1);
        hoard.push(std::hint::black_box(block));
    }
}
