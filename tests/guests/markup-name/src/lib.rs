//! A module named with markup: a page that rendered its name as HTML would run the script in
//! the image's error handler. The web console must show the name as text (tests/console.rs).

hostile_common::transactions_module!("<img src=x onerror=\"window.__pwned=1\"><b>bold</b>", run);

fn run() -> Result<(), QueryError> {
    Ok(())
}
