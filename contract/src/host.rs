//! Host bindings generated from both versions of the WIT world (wasmtime): [`v0_1`] from
//! `wit/0.1/query.wit` and [`v0_2`] from `wit/0.2/query.wit`. A room accepts modules built
//! against either. Every import is trappable, so the host can end a run that breaks the contract.
#![allow(missing_docs)]

/// `strongroom:query@0.1.0`: contributions cross the boundary one by one.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "query",
        path: "wit/0.1",
        imports: { default: trappable },
    });
}

/// `strongroom:query@0.2.0`: the host pushes entities' rows, the module returns bounded cells.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "query",
        path: "wit/0.2",
        imports: { default: trappable },
    });
}
