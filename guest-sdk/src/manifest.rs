//! The manifest a module declares: `const` values the `query!` macro encodes into the module's
//! custom section at compile time. The one encoder (and the host's one decoder) live in
//! `strongroom-contract`.

pub use strongroom_contract::manifest::declare::{
    ColumnSpec, Domain, Manifest, Metric, TableRead, check_use, encode, encoded_len, to_vec,
};
pub use strongroom_contract::manifest::{
    ColumnType, FORMAT_VERSION, FixedPoint, MAGIC, MAX_KEY_PARTS, MetricKind, Mode, SECTION,
};
