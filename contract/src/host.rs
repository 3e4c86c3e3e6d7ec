//! Host bindings generated from `wit/query.wit` (wasmtime). Every import is trappable, so the
//! host can end a run that breaks the contract.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "query",
    path: "wit",
    imports: { default: trappable },
});
