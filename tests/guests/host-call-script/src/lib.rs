//! Calls the room's host functions in the order, and with the arguments, that a script chooses:
//! the fuzz target `host_calls` writes the script as job parameters `s00` to `s31` (hex), so the
//! fuzzer picks every call and every argument: names that exist and names that do not, row
//! ranges past the end, huge counts, metrics and keys outside the manifest, NaN values, rows of
//! other tables. Whatever the script, the host must answer or end the unit; it must never fail
//! itself or let a bad call through to the aggregate.
use strongroom_guest::bindings::strongroom::query::contribute::{Contributions, contribute};
use strongroom_guest::bindings::strongroom::query::{data, schema as host_schema};
use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
struct Customer {
    avg_monthly_balance: f64,
}

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    amount: f64,
}

const ALL: &[Domain] = &[Domain::enumeration("all", &["all", "other"])];
const SEEN: Metric = Metric::count("seen", ALL);
const SPEND: Metric = Metric::sum("spend", ALL, 0.0, 1000.0);

strongroom_guest::query! {
    manifest: Manifest {
        name: "host-call-script",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Customer::READS, Transaction::READS],
        metrics: &[SEEN, SPEND],
        max_groups_per_entity: 2,
    },
    run: run,
}

/// Reads the script's bytes, one at a time; zeros once it runs out.
struct Script {
    bytes: Vec<u8>,
    at: usize,
}

impl Script {
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A small number, or now and then a huge one.
    fn count(&mut self) -> u32 {
        match self.byte() {
            0xff => self.u32(),
            b => u32::from(b % 16),
        }
    }

    /// A name: one the dataset has, one it does not, or raw bytes.
    fn name(&mut self) -> String {
        const NAMES: &[&str] = &[
            "customers",
            "transactions",
            "avg_monthly_balance",
            "amount",
            "email",
            "customer_id",
            "region",
            "",
            "no_such_table",
        ];
        match self.byte() {
            b if (b as usize) < NAMES.len() * 16 => NAMES[b as usize % NAMES.len()].to_string(),
            _ => {
                let n = self.byte() % 24;
                (0..n).map(|_| char::from(self.byte())).collect()
            }
        }
    }

    fn value(&mut self) -> f64 {
        match self.byte() % 6 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -1.0e300,
            3 => f64::from(self.u32()),
            4 => 0.5,
            _ => f64::from_bits(self.u64()),
        }
    }
}

fn script() -> Script {
    let mut bytes = Vec::new();
    for i in 0..32 {
        let Some(hex) = schema::parameter(&format!("s{i:02}")) else {
            break;
        };
        let digits: Vec<u8> = hex.bytes().collect();
        for pair in digits.chunks(2) {
            let text = std::str::from_utf8(pair).unwrap_or("00");
            bytes.push(u8::from_str_radix(text, 16).unwrap_or(0));
        }
    }
    Script { bytes, at: 0 }
}

fn run() -> Result<(), QueryError> {
    let mut s = script();
    let mut calls = 0;
    while !s.done() && calls < 256 {
        calls += 1;
        match s.byte() % 8 {
            0 => {
                let _ = host_schema::tables();
            }
            1 => {
                let (table, column) = (s.name(), s.name());
                let _ = host_schema::dictionary(&table, &column);
            }
            2 => {
                let _ = (host_schema::run_mode(), host_schema::parameters());
            }
            3 => {
                let table = s.name();
                let _ = data::row_count(&table);
            }
            4 => {
                let table = s.name();
                let columns: Vec<String> = (0..s.count().min(8)).map(|_| s.name()).collect();
                let (first, max) = (s.u64() % 64, s.count());
                let _ = data::read(&table, &columns, first, max);
            }
            5 => {
                let first = if s.byte().is_multiple_of(2) {
                    s.u64()
                } else {
                    0
                };
                let _ = data::read("transactions", &["amount".to_string()], first, u32::MAX);
            }
            6 => {
                let metric = u32::from(s.byte() % 4);
                let keys: Vec<u32> = (0..s.count().min(64)).map(|_| s.u32() % 4).collect();
                let values: Vec<f64> = (0..s.count().min(64)).map(|_| s.value()).collect();
                let table = s.name();
                let rows: Vec<u64> = (0..s.count().min(64)).map(|_| s.u64() % 128).collect();
                contribute(&Contributions {
                    metric,
                    keys,
                    values,
                    source_table: table,
                    rows,
                });
            }
            _ => {
                // The SDK's own paths, interleaved with the raw calls.
                for c in rows::<Customer>() {
                    SEEN.add(&[0], 1.0);
                    let _ = c.avg_monthly_balance;
                }
                for t in rows::<Transaction>() {
                    SPEND.add(&[0], t.amount);
                }
            }
        }
    }
    Ok(())
}
