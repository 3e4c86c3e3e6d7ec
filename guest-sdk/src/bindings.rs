//! Bindings generated from `wit/query.wit`, the whole host-guest contract.
#![allow(unsafe_code, missing_docs, clippy::all)]

wit_bindgen::generate!({
    world: "query",
    path: "wit",
    pub_export_macro: true,
    export_macro_name: "__export_query",
    default_bindings_module: "strongroom_guest::bindings",
});
