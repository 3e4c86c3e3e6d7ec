//! Guest bindings generated from one version of the WIT world (wit-bindgen): `wit/0.2/query.wit`,
//! or `wit/0.1/query.wit` with the `guest-0-1` feature. A component exports one `run`, so a
//! module is built against one version. The SDK re-exports them as `strongroom_guest::bindings`,
//! where its `query!` macro finds them.
#![allow(unsafe_code, missing_docs, clippy::all)]

#[cfg(not(feature = "guest-0-1"))]
wit_bindgen::generate!({
    world: "query",
    path: "wit/0.2",
    pub_export_macro: true,
    export_macro_name: "__export_query",
    default_bindings_module: "strongroom_guest::bindings",
});

#[cfg(feature = "guest-0-1")]
wit_bindgen::generate!({
    world: "query",
    path: "wit/0.1",
    pub_export_macro: true,
    export_macro_name: "__export_query",
    default_bindings_module: "strongroom_guest::bindings",
});
