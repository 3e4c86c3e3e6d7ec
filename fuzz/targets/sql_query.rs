//! A partner's SQL text, compiled against the synthetic bank's schema: the compiler never
//! panics, and every plan it makes survives its encoding.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strongroom_sql::{Catalog, Plan};

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let bank = strongroom_synthetic::generate(3, 2.0, 1).dataset();
        strongroom::room::sql::catalog(&bank)
    })
}

fuzz_target!(init: {
    strongroom_fuzz::seed("sql_query", &[
        ("query1", include_bytes!("../../examples/sql/spend-by-category.sql").to_vec()),
        ("fraud", include_bytes!("../../examples/sql/fraud-alerts-by-region.sql").to_vec()),
        ("analyst", include_bytes!("../../examples/sql/analyst-spend-by-region.sql").to_vec()),
        ("bands", include_bytes!("../../examples/sql/messenger-balance-bands.sql").to_vec()),
    ]);
}, |data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parameters = [("min_alerts".to_string(), "1".to_string())];
    if let Ok(compiled) = strongroom_sql::compile(&text, catalog(), &parameters) {
        let bytes = compiled.plan.to_bytes();
        let again = Plan::from_bytes(&bytes).expect("a compiled plan decodes");
        assert_eq!(again.to_bytes(), bytes, "a compiled plan survives its encoding");
    }
});
