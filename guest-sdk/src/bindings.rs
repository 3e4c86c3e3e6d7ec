//! The WIT world's guest bindings, generated in `strongroom-contract` from its `wit/query.wit`.

pub use strongroom_contract::guest::*;
