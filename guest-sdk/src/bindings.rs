//! The WIT world's guest bindings, generated in `strongroom-contract` from its `wit/0.2/query.wit` (or
//! `wit/0.1/query.wit` with the `wit-0-1` feature).

pub use strongroom_contract::guest::*;
