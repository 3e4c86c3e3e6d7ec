//! The bank's TOML: a dataset schema (also read from every sealed header) and a policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::room::policy::Policy;

fuzz_target!(init: {
    let f = strongroom_fuzz::fixture();
    strongroom_fuzz::seed(
        "schema_and_policy",
        &[
            ("schema", f.header.schema_toml.as_bytes().to_vec()),
            (
                "policy",
                b"partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nmin_group_size = 20\nmodes = [\"isolated\", \"table\"]\n[audience]\nmin_size = 10\n".to_vec(),
            ),
        ],
    );
}, |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(schema) = DatasetSchema::parse_inline(text, "fuzz") {
        // What a header carries must parse back to the same schema.
        let again = DatasetSchema::parse_inline(&schema.to_inline_toml(), "fuzz again");
        assert_eq!(again.ok().as_ref(), Some(&schema), "schema round trip");
    }
    let _ = Policy::parse(text);
});
