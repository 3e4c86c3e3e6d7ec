//! `#[derive(Row)]` for Strongroom query modules (guest side of the guest boundary): maps a
//! struct's fields to a table's columns by name, so the module's reads are declared once and
//! checked against the dataset before a run.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr, parse_macro_input};

/// Derives `strongroom_guest::Row`. Needs `#[row(table = "name")]`; a field can be renamed with
/// `#[column(name = "other")]`.
#[proc_macro_derive(Row, attributes(row, column))]
pub fn derive_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let mut table: Option<LitStr> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("row")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                table = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("expected `table = \"...\"`"))
            }
        })?;
    }
    let table = table.ok_or_else(|| {
        syn::Error::new_spanned(
            &input.ident,
            "add #[row(table = \"...\")] to name the table these rows come from",
        )
    })?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Row)] works on structs with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Row)] works on structs with named fields",
        ));
    };
    let mut specs = Vec::new();
    let mut inits = Vec::new();
    for (i, field) in fields.named.iter().enumerate() {
        let ident = field
            .ident
            .as_ref()
            .ok_or_else(|| syn::Error::new_spanned(field, "unnamed field"))?;
        let mut name = LitStr::new(&ident.to_string(), ident.span());
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("column")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    name = meta.value()?.parse()?;
                    Ok(())
                } else {
                    Err(meta.error("expected `name = \"...\"`"))
                }
            })?;
        }
        let ty = &field.ty;
        specs.push(quote! {
            ::strongroom_guest::ColumnSpec { name: #name, ty: <#ty as ::strongroom_guest::FromColumn>::TYPE }
        });
        inits
            .push(quote! { #ident: <#ty as ::strongroom_guest::FromColumn>::get(&columns[#i], i) });
    }
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::strongroom_guest::Row for #ident #ty_generics #where_clause {
            const TABLE: &'static str = #table;
            const COLUMNS: &'static [::strongroom_guest::ColumnSpec] = &[#(#specs),*];
            fn from_columns(
                columns: &[::strongroom_guest::bindings::strongroom::query::types::ColumnValues],
                i: usize,
            ) -> Self {
                Self { #(#inits),* }
            }
        }
    })
}
