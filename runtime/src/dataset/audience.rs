//! Audience matching inside the room.
//!
//! A partner seals a list of its users' emails and phone numbers to the room. For a job that asks
//! for it, the host normalizes both sides' identifiers, joins them in memory, and adds one boolean
//! guest column, [`AUDIENCE_COLUMN`], to each bank table that holds a matched identifier: true
//! for every row of an entity (customer) with at least one identifier on the partner's list.
//! Guests never see an identifier; neither party sees the other's list; the number of matches
//! is never logged or returned and leaves only through the output gate, as any aggregate does.
//!
//! Normalization rules (docs/privacy.md, "Audience matching"):
//! - an identifier column named `email` (or ending in `_email`): trimmed, lower-cased; the
//!   local part loses a `+tag` (RFC 5233 sub-addressing); for `gmail.com` and `googlemail.com`
//!   the local part also loses its dots and the domain becomes `gmail.com`. Not exactly one
//!   `@`, an empty side, whitespace inside or a domain without a dot: not an email, skipped.
//! - a column named `phone` (or ending in `_phone`): E.164. Spaces, dashes, dots, slashes and
//!   parentheses are dropped; a leading `00` becomes `+`; ten digits without a country code are
//!   North American (+1); eleven digits starting with 1 get a `+`. The result must be `+`
//!   followed by 8 to 15 digits, else it is skipped.
//! - any other identifier column: trimmed, compared exactly.
//!
//! Columns are matched by name: the bank's `email` against the list's `email`, `phone` against
//! `phone`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Column, ColumnData, Dataset};

/// The guest column a matched job adds.
pub const AUDIENCE_COLUMN: &str = "in_partner_audience";

/// Most people an audience list may hold. A list is decoded into memory to be matched, so this,
/// checked against the list's verified header before it is opened, bounds that memory.
pub const MAX_LIST_ENTITIES: u64 = 20_000_000;

/// Counts an audience list's members (people with at least one valid identifier) batch by batch,
/// as an upload streams through its check, holding one bit per person.
pub struct MemberCounter {
    identifiers: std::collections::HashMap<String, Vec<String>>,
    member: Vec<bool>,
}

impl MemberCounter {
    /// A counter for a list with `schema` and `entities` people (already checked against
    /// [`MAX_LIST_ENTITIES`]).
    pub fn new(
        schema: &crate::dataset::schema::DatasetSchema,
        entities: u64,
    ) -> Result<MemberCounter, AudienceError> {
        let identifiers: std::collections::HashMap<String, Vec<String>> = schema
            .tables
            .iter()
            .map(|t| {
                let columns = t
                    .columns
                    .iter()
                    .filter(|c| c.role == crate::dataset::schema::Role::Identifier)
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>();
                (t.name.clone(), columns)
            })
            .filter(|(_, c)| !c.is_empty())
            .collect();
        if identifiers.is_empty() {
            return Err(AudienceError::NoIdentifiers);
        }
        Ok(MemberCounter {
            identifiers,
            member: vec![false; usize::try_from(entities.min(MAX_LIST_ENTITIES)).unwrap_or(0)],
        })
    }

    /// Marks the members one checked batch of `table` shows.
    pub fn visit(&mut self, table: &str, batch: &arrow_array::RecordBatch) {
        use arrow_array::{Array, StringArray, UInt32Array};
        let Some(columns) = self.identifiers.get(table) else {
            return;
        };
        let Some(entity) = batch
            .column_by_name("entity")
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        else {
            return;
        };
        for name in columns {
            let kind = IdentifierKind::of(name);
            let Some(values) = batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            else {
                continue;
            };
            for row in 0..values.len() {
                if kind.normalize(values.value(row)).is_some()
                    && let Some(m) = self.member.get_mut(entity.value(row) as usize)
                {
                    *m = true;
                }
            }
        }
    }

    /// Members counted.
    pub fn members(&self) -> usize {
        self.member.iter().filter(|&&m| m).count()
    }
}

/// How an identifier column is normalized, chosen by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    /// Email addresses.
    Email,
    /// Phone numbers (to E.164).
    Phone,
    /// Anything else: trimmed, exact.
    Exact,
}

impl IdentifierKind {
    /// The kind of a column, by its name.
    pub fn of(column: &str) -> IdentifierKind {
        let c = column.to_ascii_lowercase();
        if c == "email" || c.ends_with("_email") {
            IdentifierKind::Email
        } else if c == "phone" || c.ends_with("_phone") {
            IdentifierKind::Phone
        } else {
            IdentifierKind::Exact
        }
    }

    /// The normalized form of `value`, or `None` when it is not a valid identifier of this kind.
    pub fn normalize(self, value: &str) -> Option<String> {
        match self {
            IdentifierKind::Email => normalize_email(value),
            IdentifierKind::Phone => normalize_phone(value),
            IdentifierKind::Exact => {
                let v = value.trim();
                (!v.is_empty()).then(|| v.to_string())
            }
        }
    }
}

/// An email address in its matching form (see the module documentation).
pub fn normalize_email(value: &str) -> Option<String> {
    let v = value.trim().to_lowercase();
    let (local, domain) = v.split_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || v.chars().any(char::is_whitespace)
    {
        return None;
    }
    let local = local.split('+').next().unwrap_or_default();
    let (local, domain) = match domain {
        "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
        _ => (local.to_string(), domain),
    };
    if local.is_empty() {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

/// A phone number in E.164 (see the module documentation).
pub fn normalize_phone(value: &str) -> Option<String> {
    let v = value.trim();
    let mut digits = String::with_capacity(v.len());
    let mut plus = false;
    for (i, c) in v.chars().enumerate() {
        match c {
            '+' if i == 0 => plus = true,
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            _ => return None,
        }
    }
    if !plus && let Some(rest) = digits.strip_prefix("00") {
        digits = rest.to_string();
        plus = true;
    }
    if !plus {
        if digits.len() == 10 {
            digits.insert(0, '1');
        } else if !(digits.len() == 11 && digits.starts_with('1')) {
            return None;
        }
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    Some(format!("+{digits}"))
}

/// Why a list cannot be matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudienceError {
    /// The list has no identifier columns.
    #[error(
        "the audience list has no identifier columns (seal it with email and/or phone as role = \"identifier\")"
    )]
    NoIdentifiers,
    /// The list and the bank share no identifier column name.
    #[error(
        "the audience list's identifier columns ({list}) share no name with the bank's ({bank}); name them email or phone"
    )]
    NothingInCommon {
        /// The list's identifier columns.
        list: String,
        /// The bank's identifier columns.
        bank: String,
    },
    /// The bank's data already has a column of that name.
    #[error("table '{0}' already has a column named {AUDIENCE_COLUMN}")]
    ColumnExists(String),
}

/// A partner's list, normalized, held in the host's memory only.
#[derive(Debug, Clone, Default)]
pub struct AudienceList {
    sets: HashMap<String, HashSet<String>>,
    members: usize,
    skipped: u64,
}

/// Why an audience list's size is outside what the policy allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AudienceSizeError(pub String);

impl From<String> for AudienceSizeError {
    fn from(message: String) -> Self {
        AudienceSizeError(message)
    }
}

impl From<&str> for AudienceSizeError {
    fn from(message: &str) -> Self {
        AudienceSizeError(message.to_string())
    }
}

impl AudienceList {
    /// Reads every identifier column of every table of the partner's dataset. A member is one
    /// entity of that dataset (one user) with at least one valid identifier.
    pub fn from_dataset(list: &Dataset) -> Result<AudienceList, AudienceError> {
        let mut out = AudienceList::default();
        let mut member = vec![false; list.entities()];
        for table in &list.tables {
            for column in &table.identifiers {
                let kind = IdentifierKind::of(&column.name);
                let set = out
                    .sets
                    .entry(column.name.to_ascii_lowercase())
                    .or_default();
                for (row, value) in column.values.iter().enumerate() {
                    match kind.normalize(value) {
                        Some(v) => {
                            set.insert(v);
                            if let Some(m) = member.get_mut(table.entity_of_row[row] as usize) {
                                *m = true;
                            }
                        }
                        None if value.trim().is_empty() => {}
                        None => out.skipped += 1,
                    }
                }
            }
        }
        if out.sets.is_empty() {
            return Err(AudienceError::NoIdentifiers);
        }
        out.members = member.iter().filter(|&&m| m).count();
        Ok(out)
    }

    /// Builds a list from plain values per column name (tests, tools); the i-th value of every
    /// column belongs to the i-th member.
    pub fn from_values<'a>(
        columns: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>,
    ) -> AudienceList {
        let mut out = AudienceList::default();
        let mut member: Vec<bool> = Vec::new();
        for (name, values) in columns {
            let kind = IdentifierKind::of(name);
            let set = out.sets.entry(name.to_ascii_lowercase()).or_default();
            if member.len() < values.len() {
                member.resize(values.len(), false);
            }
            for (i, v) in values.into_iter().enumerate() {
                match kind.normalize(v) {
                    Some(n) => {
                        set.insert(n);
                        member[i] = true;
                    }
                    None if v.trim().is_empty() => {}
                    None => out.skipped += 1,
                }
            }
        }
        out.members = member.iter().filter(|&&m| m).count();
        out
    }

    /// Members: the list's entities with at least one valid identifier. What policy bounds.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Distinct normalized identifiers per identifier column (lower-cased name), sorted by name.
    pub fn identifier_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.sets
            .iter()
            .map(|(name, set)| (name.clone(), set.len() as u64))
            .collect()
    }

    /// Checks the list's size against a policy's bounds, on counts a list cannot inflate or
    /// shrink by repetition: the members (distinct entities with at least one valid identifier)
    /// and, for every identifier column, its distinct normalized identifiers. A thousand
    /// entities that all carry one e-mail address are one address (a lookup of one person);
    /// a thousand entities carrying fifty thousand addresses are fifty thousand (a dictionary).
    pub fn check_size(&self, min: u64, max: u64) -> Result<(), AudienceSizeError> {
        let members = self.members as u64;
        if members < min || members > max {
            return Err(format!(
                "the audience list has {members} members; the policy allows {min} to {max}"
            )
            .into());
        }
        for (name, count) in self.identifier_counts() {
            if count < min || count > max {
                return Err(format!(
                    "the audience list's column '{name}' has {count} distinct identifiers; the policy allows {min} to {max} per column"
                ).into());
            }
        }
        Ok(())
    }

    /// List values that were not valid identifiers of their column's kind, skipped.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Adds [`AUDIENCE_COLUMN`] to every table of `dataset` holding an identifier column the
    /// list also has. Only the host calls this; the count of matches is not returned.
    pub fn attach(&self, dataset: &mut Dataset) -> Result<(), AudienceError> {
        // Indexed from the first entity the dataset (or window) holds.
        let first = dataset.span.start;
        let mut matched = vec![false; dataset.entities()];
        let mut tables_with_match = Vec::new();
        let mut bank_names = Vec::new();
        for (t, table) in dataset.tables.iter().enumerate() {
            for column in &table.identifiers {
                bank_names.push(column.name.clone());
                let Some(set) = self.sets.get(&column.name.to_ascii_lowercase()) else {
                    continue;
                };
                if !tables_with_match.contains(&t) {
                    tables_with_match.push(t);
                }
                let kind = IdentifierKind::of(&column.name);
                for (row, value) in column.values.iter().enumerate() {
                    if kind.normalize(value).is_some_and(|v| set.contains(&v))
                        && let Some(m) = table.entity_of_row[row]
                            .checked_sub(first)
                            .and_then(|e| matched.get_mut(e as usize))
                    {
                        *m = true;
                    }
                }
            }
        }
        if tables_with_match.is_empty() {
            let mut list: Vec<&str> = self.sets.keys().map(String::as_str).collect();
            list.sort_unstable();
            return Err(AudienceError::NothingInCommon {
                list: list.join(", "),
                bank: if bank_names.is_empty() {
                    "none".into()
                } else {
                    bank_names.join(", ")
                },
            });
        }
        for &t in &tables_with_match {
            if dataset.tables[t].column(AUDIENCE_COLUMN).is_some() {
                return Err(AudienceError::ColumnExists(dataset.tables[t].name.clone()));
            }
        }
        for t in tables_with_match {
            // Copies this table if other jobs share it; the other tables stay shared.
            let table = Arc::make_mut(&mut dataset.tables[t]);
            let values = table
                .entity_of_row
                .iter()
                .map(|&e| {
                    e.checked_sub(first)
                        .and_then(|e| matched.get(e as usize))
                        .is_some_and(|&m| m)
                })
                .collect();
            table.guest_columns.push(Column {
                name: AUDIENCE_COLUMN.into(),
                data: ColumnData::Bool(values),
                dictionary: None,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalize_by_the_documented_rules() {
        let n = normalize_email;
        assert_eq!(n("  Alice@Example.COM "), Some("alice@example.com".into()));
        assert_eq!(n("bob+news@example.com"), Some("bob@example.com".into()));
        assert_eq!(n("j.doe+x@googlemail.com"), Some("jdoe@gmail.com".into()));
        assert_eq!(n("j.doe@example.com"), Some("j.doe@example.com".into()));
        for bad in [
            "",
            "no-at.example.com",
            "a@b@c.com",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "+tag@example.com",
            "a@.com",
        ] {
            assert_eq!(n(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn phones_normalize_to_e164() {
        let n = normalize_phone;
        assert_eq!(n("(555) 000-0001"), Some("+15550000001".into()));
        assert_eq!(n("555.000.0001"), Some("+15550000001".into()));
        assert_eq!(n("1-555-000-0001"), Some("+15550000001".into()));
        assert_eq!(n("+1 555 000 0001"), Some("+15550000001".into()));
        assert_eq!(n("0044 20 7946 0958"), Some("+442079460958".into()));
        assert_eq!(n("+44 20 7946 0958"), Some("+442079460958".into()));
        for bad in [
            "",
            "12345",
            "555-0001",
            "+1 555 000 0001 ext 2",
            "+0 555 000 0001",
            "phone",
            "+1234567890123456",
            "1+5550000001",
        ] {
            assert_eq!(n(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn sizes_count_distinct_identifiers_and_members() {
        let same = vec!["target@example.com"; 1000];
        let lookup = AudienceList::from_values([("email", same)]);
        assert_eq!(lookup.members(), 1000);
        let why = lookup
            .check_size(1000, 5000)
            .expect_err("one address is a lookup");
        assert!(why.0.contains("1 distinct"), "{why}");
        let emails: Vec<String> = (0..3000).map(|i| format!("u{i}@example.com")).collect();
        let wide = AudienceList::from_values([(
            "email",
            emails.iter().map(String::as_str).collect::<Vec<_>>(),
        )]);
        assert!(wide.check_size(1000, 5000).is_ok());
        assert!(wide.check_size(1000, 2000).is_err(), "too many identifiers");
        // Many addresses on few entities: the identifier count, not the members, trips the cap.
        let phones: Vec<String> = (0..3000).map(|i| format!("+1415555{i:04}")).collect();
        let mut both = wide.clone();
        both.members = 10;
        assert!(both.check_size(5, 1000).is_err());
        let few = AudienceList::from_values([(
            "phone",
            phones
                .iter()
                .take(5)
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )]);
        assert!(few.check_size(5, 10).is_ok());
    }

    #[test]
    fn kinds_follow_column_names() {
        assert_eq!(IdentifierKind::of("email"), IdentifierKind::Email);
        assert_eq!(IdentifierKind::of("work_email"), IdentifierKind::Email);
        assert_eq!(IdentifierKind::of("Phone"), IdentifierKind::Phone);
        assert_eq!(IdentifierKind::of("loyalty_id"), IdentifierKind::Exact);
    }
}
