//! # strongroom-synthetic: a seeded synthetic bank, for development only
//!
//! Customers and card transactions with realistic skew (a few heavy spenders, many small
//! accounts), and a partner's user list overlapping them, for the demo, `strongroom dev`, tests
//! and benchmarks. Never real data. The room's library and server do not depend on this crate.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub mod from_schema;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use strongroom::dataset::csv_input::date_string;
use strongroom::dataset::{
    Column, ColumnData, Dataset, HiddenColumns, IdentifierColumn, Table, UngroupedTable,
};

/// Age bands, the public dictionary of `customers.age_band`.
pub const AGE_BANDS: &[&str] = &["18-24", "25-34", "35-44", "45-54", "55-64", "65+"];
/// Regions, the public dictionary of `customers.region`.
pub const REGIONS: &[&str] = &["Northeast", "Midwest", "South", "West"];
/// Account types, the public dictionary of `customers.account_type`.
pub const ACCOUNT_TYPES: &[&str] = &["checking", "savings", "premium"];
/// Merchant category groups (ISO 18245 ranges), the public dictionary of
/// `transactions.mcc_group`, with a typical ticket size and a weight.
pub const MCC_GROUPS: &[(&str, f64, u32)] = &[
    ("Grocery stores", 45.0, 30),
    ("Restaurants", 28.0, 20),
    ("Fuel", 40.0, 12),
    ("Retail", 55.0, 12),
    ("Online marketplaces", 38.0, 10),
    ("Travel and airlines", 320.0, 3),
    ("Hotels and lodging", 210.0, 2),
    ("Entertainment", 32.0, 5),
    ("Utilities and telecom", 85.0, 4),
    ("Health and pharmacy", 35.0, 2),
];

fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn pick<'a>(rng: &mut ChaCha20Rng, items: &'a [&'a str]) -> u32 {
    (rng.next_u64() % items.len() as u64) as u32
}

/// Standard normal by Box-Muller (synthetic data only; never used for noise).
fn normal(rng: &mut ChaCha20Rng) -> f64 {
    let u1 = uniform(rng).max(f64::MIN_POSITIVE);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The generated bank, column by column.
#[derive(Debug, Clone)]
pub struct SyntheticBank {
    /// customers: key, email, phone, age band, region, account type, tenure.
    pub customer_id: Vec<String>,
    /// Identifier.
    pub email: Vec<String>,
    /// Identifier.
    pub phone: Vec<String>,
    /// Index into [`AGE_BANDS`].
    pub age_band: Vec<u32>,
    /// Index into [`REGIONS`].
    pub region: Vec<u32>,
    /// Index into [`ACCOUNT_TYPES`].
    pub account_type: Vec<u32>,
    /// Years with the bank.
    pub tenure_years: Vec<i64>,
    /// Average monthly balance over the year, in dollars (log-normal; premium accounts higher).
    pub avg_monthly_balance: Vec<f64>,
    /// Fraud alerts raised on the customer's accounts in the last quarter (most have none).
    pub fraud_alerts_last_quarter: Vec<i64>,
    /// transactions: owning customer (index into `customer_id`).
    pub tx_customer: Vec<u32>,
    /// Days since 1970-01-01, within 2025.
    pub tx_date: Vec<i32>,
    /// Index into [`MCC_GROUPS`].
    pub tx_mcc_group: Vec<u32>,
    /// Amount in dollars.
    pub tx_amount: Vec<f64>,
    /// Card not present.
    pub tx_online: Vec<bool>,
}

/// Generates `customers` customers with about `mean_transactions` card transactions each.
pub fn generate(customers: usize, mean_transactions: f64, seed: u64) -> SyntheticBank {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut bank = SyntheticBank {
        customer_id: Vec::with_capacity(customers),
        email: Vec::with_capacity(customers),
        phone: Vec::with_capacity(customers),
        age_band: Vec::with_capacity(customers),
        region: Vec::with_capacity(customers),
        account_type: Vec::with_capacity(customers),
        tenure_years: Vec::with_capacity(customers),
        avg_monthly_balance: Vec::with_capacity(customers),
        fraud_alerts_last_quarter: Vec::with_capacity(customers),
        tx_customer: Vec::new(),
        tx_date: Vec::new(),
        tx_mcc_group: Vec::new(),
        tx_amount: Vec::new(),
        tx_online: Vec::new(),
    };
    let total_weight: u32 = MCC_GROUPS.iter().map(|g| g.2).sum();
    let year_start = 20_089; // 2025-01-01
    for c in 0..customers {
        bank.customer_id.push(format!("C{:08}", c + 1));
        bank.email.push(format!("customer{}@example.com", c + 1));
        bank.phone.push(format!("+1555{:07}", c + 1));
        bank.age_band.push(pick(&mut rng, AGE_BANDS));
        bank.region.push(pick(&mut rng, REGIONS));
        bank.account_type.push(pick(&mut rng, ACCOUNT_TYPES));
        bank.tenure_years.push((rng.next_u64() % 30) as i64);
        // Activity is log-normal: many light users, a few heavy spenders.
        let activity = (0.8 * normal(&mut rng) - 0.32).exp();
        let n = (mean_transactions * activity * (0.5 + uniform(&mut rng))).round() as usize;
        let premium = if bank.account_type[c] == 2 { 4.0 } else { 1.0 };
        let balance = (premium * (7.6 + 1.1 * normal(&mut rng)).exp() * 100.0).round() / 100.0;
        bank.avg_monthly_balance.push(balance);
        // Heavy card users see more alerts; about 4% of customers have one in a quarter.
        let alert_chance = (0.03 * activity).min(0.5);
        let alerts = if uniform(&mut rng) < alert_chance {
            1 + (rng.next_u64() % 3) as i64
        } else {
            0
        };
        bank.fraud_alerts_last_quarter.push(alerts);
        for _ in 0..n {
            let mut w = (rng.next_u64() % u64::from(total_weight)) as u32;
            let mut group = 0;
            while w >= MCC_GROUPS[group].2 {
                w -= MCC_GROUPS[group].2;
                group += 1;
            }
            let typical = MCC_GROUPS[group].1;
            let amount = (typical * (0.7 * normal(&mut rng)).exp() * 100.0).round() / 100.0;
            bank.tx_customer.push(c as u32);
            bank.tx_date
                .push(year_start + (rng.next_u64() % 365) as i32);
            bank.tx_mcc_group.push(group as u32);
            bank.tx_amount.push(amount.max(0.01));
            bank.tx_online.push(rng.next_u64() % 3 == 0);
        }
    }
    bank
}

fn dict(items: &[&str]) -> Option<Arc<[String]>> {
    Some(
        items
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into(),
    )
}

/// The schema (TOML) of the synthetic bank, as a bank would write it.
pub fn schema_toml() -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mcc: Vec<&str> = MCC_GROUPS.iter().map(|g| g.0).collect();
    format!(
        r#"# The synthetic bank's dataset schema (see docs/formats/schema.md).
name = "bank"

[[tables]]
name = "customers"
columns = [
  {{ name = "customer_id", role = "entity" }},
  {{ name = "email", role = "identifier" }},
  {{ name = "phone", role = "identifier" }},
  {{ name = "age_band", role = "category", dictionary = [{}] }},
  {{ name = "region", role = "category", dictionary = [{}] }},
  {{ name = "account_type", role = "category", dictionary = [{}] }},
  {{ name = "tenure_years", role = "int", min = 0, max = 100 }},
  {{ name = "avg_monthly_balance", role = "float", min = -1000000.0, max = 1000000000.0 }},
  {{ name = "fraud_alerts_last_quarter", role = "int", min = 0, max = 1000 }},
]

[[tables]]
name = "transactions"
columns = [
  {{ name = "customer_id", role = "entity" }},
  {{ name = "date", role = "date" }},
  {{ name = "mcc_group", role = "category", dictionary = [{}] }},
  {{ name = "amount", role = "float", min = 0.0, max = 1000000.0 }},
  {{ name = "online", role = "bool" }},
]
"#,
        list(AGE_BANDS),
        list(REGIONS),
        list(ACCOUNT_TYPES),
        list(&mcc)
    )
}

/// The partner's side of the story: its users' emails and phone numbers, written the way the
/// partner's own systems write them (other letter case, sub-address tags, formatted phone
/// numbers), overlapping part of the bank's customers, younger customers more often.
#[derive(Debug, Clone)]
pub struct PartnerUsers {
    /// The partner's user ids (its entity key).
    pub user_id: Vec<String>,
    /// Email, or empty when the partner has none.
    pub email: Vec<String>,
    /// Phone, or empty when the partner has none.
    pub phone: Vec<String>,
}

/// Chance, per age band, that a bank customer is also one of the partner's users.
const PARTNER_SHARE_BY_AGE: [f64; 6] = [0.7, 0.6, 0.45, 0.35, 0.25, 0.15];

/// The partner's user list: the bank customers who use the partner (about 45% of them, more
/// among the young), plus `others` people who are not the bank's customers.
pub fn partner_users(bank: &SyntheticBank, others: usize, seed: u64) -> PartnerUsers {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x005e_ed0f_9a27_4e55);
    let mut users = PartnerUsers {
        user_id: Vec::new(),
        email: Vec::new(),
        phone: Vec::new(),
    };
    let push = |users: &mut PartnerUsers, email: String, phone: String| {
        users
            .user_id
            .push(format!("U{:09}", users.user_id.len() + 1));
        users.email.push(email);
        users.phone.push(phone);
    };
    for c in 0..bank.customer_id.len() {
        if uniform(&mut rng) >= PARTNER_SHARE_BY_AGE[bank.age_band[c] as usize] {
            continue;
        }
        // How the partner knows this person: by email (in its own spelling), by phone (in its
        // own format), or both.
        let how = rng.next_u64() % 4;
        let email = match how {
            0 => String::new(),
            1 => bank.email[c].to_uppercase(),
            2 => bank.email[c].replace('@', "+social@"),
            _ => bank.email[c].clone(),
        };
        let phone = if how == 0 || how == 3 {
            let p = &bank.phone[c]; // +1 NPA NXX XXXX
            format!("({}) {}-{}", &p[2..5], &p[5..8], &p[8..])
        } else {
            String::new()
        };
        push(&mut users, email, phone);
    }
    for i in 0..others {
        let email = format!("user{}@example.net", i + 1);
        let phone = if rng.next_u64() % 2 == 0 {
            format!("+44 7700 9{:05}", i % 100_000)
        } else {
            String::new()
        };
        push(&mut users, email, phone);
    }
    users
}

/// The schema (TOML) of the partner's user list.
pub fn partner_schema_toml() -> String {
    r#"# The partner's audience list (see docs/privacy.md, "Audience matching").
name = "partner-audience"

[[tables]]
name = "users"
columns = [
  { name = "user_id", role = "entity" },
  { name = "email", role = "identifier" },
  { name = "phone", role = "identifier" },
]
"#
    .to_string()
}

impl PartnerUsers {
    /// Number of users.
    pub fn len(&self) -> usize {
        self.user_id.len()
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_empty()
    }

    /// Writes `users.csv` and `schema.toml` into `dir`.
    pub fn write_csv(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("users.csv"))?);
        writeln!(w, "user_id,email,phone")?;
        for i in 0..self.len() {
            writeln!(w, "{},{},{}", self.user_id[i], self.email[i], self.phone[i])?;
        }
        w.flush()?;
        std::fs::write(dir.join("schema.toml"), partner_schema_toml())
    }
}

impl SyntheticBank {
    /// Number of transactions.
    pub fn transactions(&self) -> usize {
        self.tx_customer.len()
    }

    /// Writes `customers.csv`, `transactions.csv` and `schema.toml` into `dir`.
    pub fn write_csv(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut c = std::io::BufWriter::new(std::fs::File::create(dir.join("customers.csv"))?);
        writeln!(
            c,
            "customer_id,email,phone,age_band,region,account_type,tenure_years,avg_monthly_balance,fraud_alerts_last_quarter"
        )?;
        for i in 0..self.customer_id.len() {
            writeln!(
                c,
                "{},{},{},{},{},{},{},{:.2},{}",
                self.customer_id[i],
                self.email[i],
                self.phone[i],
                AGE_BANDS[self.age_band[i] as usize],
                REGIONS[self.region[i] as usize],
                ACCOUNT_TYPES[self.account_type[i] as usize],
                self.tenure_years[i],
                self.avg_monthly_balance[i],
                self.fraud_alerts_last_quarter[i]
            )?;
        }
        c.flush()?;
        let mut t = std::io::BufWriter::new(std::fs::File::create(dir.join("transactions.csv"))?);
        writeln!(t, "customer_id,date,mcc_group,amount,online")?;
        for i in 0..self.transactions() {
            writeln!(
                t,
                "{},{},{},{:.2},{}",
                self.customer_id[self.tx_customer[i] as usize],
                date_string(self.tx_date[i]),
                MCC_GROUPS[self.tx_mcc_group[i] as usize].0,
                self.tx_amount[i],
                self.tx_online[i]
            )?;
        }
        t.flush()?;
        std::fs::write(dir.join("schema.toml"), schema_toml())
    }

    /// The bank as an in-memory dataset (what a run reads).
    pub fn dataset(&self) -> Dataset {
        let mcc: Vec<&str> = MCC_GROUPS.iter().map(|g| g.0).collect();
        let customers = UngroupedTable {
            name: "customers".into(),
            hidden: HiddenColumns {
                entity: Some("customer_id".into()),
                identifiers: vec!["email".into(), "phone".into()],
            },
            entity_keys: self.customer_id.clone(),
            columns: vec![
                Column {
                    name: "age_band".into(),
                    data: ColumnData::Category(self.age_band.clone()),
                    dictionary: dict(AGE_BANDS),
                },
                Column {
                    name: "region".into(),
                    data: ColumnData::Category(self.region.clone()),
                    dictionary: dict(REGIONS),
                },
                Column {
                    name: "account_type".into(),
                    data: ColumnData::Category(self.account_type.clone()),
                    dictionary: dict(ACCOUNT_TYPES),
                },
                Column {
                    name: "tenure_years".into(),
                    data: ColumnData::Int(self.tenure_years.clone()),
                    dictionary: None,
                },
                Column {
                    name: "avg_monthly_balance".into(),
                    data: ColumnData::Float(self.avg_monthly_balance.clone()),
                    dictionary: None,
                },
                Column {
                    name: "fraud_alerts_last_quarter".into(),
                    data: ColumnData::Int(self.fraud_alerts_last_quarter.clone()),
                    dictionary: None,
                },
            ],
            identifiers: vec![
                IdentifierColumn {
                    name: "email".into(),
                    values: self.email.clone(),
                },
                IdentifierColumn {
                    name: "phone".into(),
                    values: self.phone.clone(),
                },
            ],
        };
        let transactions = UngroupedTable {
            name: "transactions".into(),
            hidden: HiddenColumns {
                entity: Some("customer_id".into()),
                identifiers: vec![],
            },
            entity_keys: self
                .tx_customer
                .iter()
                .map(|&c| self.customer_id[c as usize].clone())
                .collect(),
            columns: vec![
                Column {
                    name: "date".into(),
                    data: ColumnData::Date(self.tx_date.clone()),
                    dictionary: None,
                },
                Column {
                    name: "mcc_group".into(),
                    data: ColumnData::Category(self.tx_mcc_group.clone()),
                    dictionary: dict(&mcc),
                },
                Column {
                    name: "amount".into(),
                    data: ColumnData::Float(self.tx_amount.clone()),
                    dictionary: None,
                },
                Column {
                    name: "online".into(),
                    data: ColumnData::Bool(self.tx_online.clone()),
                    dictionary: None,
                },
            ],
            identifiers: vec![],
        };
        // Generated rows are already grouped by entity (keys are zero-padded, so their order is
        // the generation order): build the tables directly, without sorting millions of keys.
        if self.tx_customer.is_sorted() {
            let n = self.customer_id.len();
            let mut starts = vec![0u32; n + 1];
            for &c in &self.tx_customer {
                starts[c as usize + 1] += 1;
            }
            for e in 0..n {
                starts[e + 1] += starts[e];
            }
            let table =
                |t: UngroupedTable, entity_of_row: Vec<u32>, entity_starts: Vec<u32>| Table {
                    name: t.name,
                    hidden: t.hidden,
                    guest_columns: t.columns,
                    identifiers: t.identifiers,
                    entity_of_row,
                    first_entity: 0,
                    entity_starts,
                };
            let customers_table =
                table(customers, (0..n as u32).collect(), (0..=n as u32).collect());
            let transactions_table = table(transactions, self.tx_customer.clone(), starts);
            return Dataset {
                name: "bank".into(),
                tables: vec![Arc::new(customers_table), Arc::new(transactions_table)],
                entity_keys: self.customer_id.clone(),
                span: 0..n as u32,
            };
        }
        Dataset::group("bank", vec![customers, transactions])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_grouping_matches_the_general_one() {
        let bank = generate(40, 10.0, 3);
        let direct = bank.dataset();
        let t = direct.table("transactions").expect("transactions");
        let mut shuffled = bank.clone();
        // Moving one transaction to the end forces the general path.
        let last = shuffled.tx_customer.len() - 1;
        shuffled.tx_customer.swap(0, last);
        shuffled.tx_amount.swap(0, last);
        shuffled.tx_mcc_group.swap(0, last);
        shuffled.tx_date.swap(0, last);
        shuffled.tx_online.swap(0, last);
        let general = shuffled.dataset();
        let g = general.table("transactions").expect("transactions");
        assert_eq!(t.entity_starts, g.entity_starts);
        assert_eq!(direct.entity_keys, general.entity_keys);
        for e in 0..40 {
            let sum = |tab: &Table| -> f64 {
                match &tab.column("amount").expect("amount").data {
                    ColumnData::Float(v) => tab.entity_rows(e).map(|r| v[r]).sum::<f64>(),
                    _ => unreachable!("amount is a float column"),
                }
            };
            assert!((sum(t) - sum(g)).abs() < 1e-9);
        }
    }

    #[test]
    fn every_partner_user_from_the_bank_matches_after_normalization() {
        use strongroom::dataset::audience::{AUDIENCE_COLUMN, AudienceList};
        let bank = generate(2_000, 2.0, 5);
        let users = partner_users(&bank, 300, 5);
        let from_bank = users.len() - 300;
        // About 45% of customers, more of the young.
        assert!((700..1_100).contains(&from_bank), "{from_bank}");
        let list = AudienceList::from_values([
            ("email", users.email.iter().map(String::as_str).collect()),
            ("phone", users.phone.iter().map(String::as_str).collect()),
        ]);
        let mut dataset = bank.dataset();
        list.attach(&mut dataset).expect("attach");
        let customers = dataset.table("customers").expect("customers");
        let ColumnData::Bool(flags) = &customers.column(AUDIENCE_COLUMN).expect("flag").data else {
            panic!("bool")
        };
        assert_eq!(flags.iter().filter(|&&f| f).count(), from_bank);
    }

    #[test]
    fn same_seed_same_bank_and_dates_round_trip() {
        let a = generate(50, 20.0, 7);
        let b = generate(50, 20.0, 7);
        assert_eq!(a.tx_amount, b.tx_amount);
        assert!(a.transactions() > 200, "about 20 transactions a customer");
        for &d in a.tx_date.iter().take(50) {
            assert_eq!(
                strongroom::dataset::csv_input::parse_date(&date_string(d)),
                Some(d)
            );
        }
    }

    #[test]
    fn sample_data_from_a_schema_loads_under_it_in_the_banks_order() {
        use strongroom::dataset::csv_input::load_csv_tables;
        use strongroom::dataset::schema::DatasetSchema;
        let dir = std::env::temp_dir().join(format!("strongroom-sample-{}", std::process::id()));
        let bank_dir = dir.join("bank");
        generate(10, 2.0, 1).write_csv(&bank_dir).expect("bank");
        // The bank's schema, with a dictionary in an order that is not alphabetical.
        let schema = DatasetSchema::load(&bank_dir.join("schema.toml")).expect("schema");
        let sample_dir = dir.join("sample");
        let written = from_schema::write_sample(&schema, 300, 4.0, 9, &sample_dir).expect("sample");
        assert_eq!(written[0], ("customers".to_string(), 300));
        let tables: Vec<(String, std::path::PathBuf)> = written
            .iter()
            .map(|(t, _)| (t.clone(), sample_dir.join(format!("{t}.csv"))))
            .collect();
        let again = DatasetSchema::load(&sample_dir.join("schema.toml")).expect("its schema");
        assert_eq!(again, schema);
        let (dataset, _) = load_csv_tables(&tables, Some(&again), "customer_id").expect("loads");
        assert_eq!(dataset.entities(), 300);
        let age = dataset
            .table("customers")
            .and_then(|t| t.column("age_band"))
            .expect("age band");
        // Every band appears, and the dictionary is the bank's, in the bank's order.
        match &age.data {
            ColumnData::Category(v) => assert!((0..6).all(|band| v.contains(&band))),
            other => panic!("age_band is not a category: {other:?}"),
        }
        // The regions' dictionary is not alphabetical: the bank's order is kept.
        let region = dataset
            .table("customers")
            .and_then(|t| t.column("region"))
            .expect("region");
        let regions: Vec<String> = REGIONS.iter().map(|r| r.to_string()).collect();
        assert_eq!(region.dictionary.as_deref(), Some(&regions[..]));
        // Written again into the same directory: refused, and the files there are untouched.
        let before = std::fs::read(sample_dir.join("customers.csv")).expect("customers");
        let again = from_schema::write_sample(&schema, 5, 1.0, 10, &sample_dir);
        assert!(again.is_err_and(|e| e.to_string().contains("exists")));
        assert_eq!(
            std::fs::read(sample_dir.join("customers.csv")).expect("customers"),
            before
        );
        assert!(
            std::fs::read_dir(&sample_dir).expect("dir").all(|e| !e
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")),
            "no partial file left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
