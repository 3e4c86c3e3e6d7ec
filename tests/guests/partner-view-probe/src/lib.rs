//! A partner's probe for one customer, through every channel around the noised release. The
//! target is the customer whose balance is exactly `TARGET`; every other customer contributes
//! normally. For the target, the `channel` parameter picks how to signal:
//!
//! - `trap`, `error`, `memory`, `fuel`, `stack`, `output`, `contributions`, `key`: fail the unit
//!   with a chosen outcome code (the first version of the room let the lowest failing unit's code
//!   reach the partner: about 3 bits per job);
//! - `print`: print the balance (the room used to write a log entry only when a module printed,
//!   and that entry's leaf hash let anyone recover the text);
//! - `slow`: touch 56 MiB and spin within the fuel limit, to move the job's duration.
//!
//! The partner view must be the same whether or not the target is in the data.
use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
struct Customer {
    avg_monthly_balance: f64,
}

/// The balance that marks the target customer in the test's dataset.
const TARGET: f64 = 123_456.78;

const ALL: &[Domain] = &[Domain::enumeration("all", &["all"])];
const SEEN: Metric = Metric::count("seen", ALL);

strongroom_guest::query! {
    manifest: Manifest {
        name: "partner-view-probe",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Customer::READS],
        metrics: &[SEEN],
        max_groups_per_entity: 1,
    },
    run: run,
}

#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))) ^ depth
}

fn run() -> Result<(), QueryError> {
    let channel = schema::parameter("channel").unwrap_or_default();
    for c in rows::<Customer>() {
        if c.avg_monthly_balance != TARGET {
            continue;
        }
        match channel.as_str() {
            "trap" => panic!("balance {}", c.avg_monthly_balance),
            "error" => {
                return Err(QueryError::from(format!(
                    "balance {}",
                    c.avg_monthly_balance
                )));
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block: Vec<u8> = Vec::with_capacity(4 << 20);
                    block.push(1);
                    hoard.push(std::hint::black_box(block));
                }
            }
            "fuel" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
                }
            }
            "stack" => {
                std::hint::black_box(recurse(0));
            }
            "output" => loop {
                println!("{}", "x".repeat(1024));
            },
            "contributions" => loop {
                SEEN.add_one(&[0]);
            },
            "key" => SEEN.add_one(&[7]),
            "print" => println!("balance {}", c.avg_monthly_balance),
            "slow" => {
                // Page faults cost time that fuel does not count.
                let mut pages = vec![0u8; 56 << 20];
                for i in (0..pages.len()).step_by(4096) {
                    pages[i] = 1;
                }
                std::hint::black_box(&pages);
                let mut x: u64 = 1;
                for _ in 0..2_000_000 {
                    x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
                }
            }
            _ => {}
        }
    }
    SEEN.add_one(&[0]);
    Ok(())
}
