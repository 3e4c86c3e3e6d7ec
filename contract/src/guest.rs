//! Guest bindings generated from `wit/query.wit` (wit-bindgen). The SDK re-exports them as
//! `strongroom_guest::bindings`, where its `query!` macro finds them.
#![allow(unsafe_code, missing_docs, clippy::all)]

wit_bindgen::generate!({
    world: "query",
    path: "wit",
    pub_export_macro: true,
    export_macro_name: "__export_query",
    default_bindings_module: "strongroom_guest::bindings",
});
