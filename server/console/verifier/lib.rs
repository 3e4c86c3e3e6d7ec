//! The web console's log verifier: `strongroom-verify`, compiled for `wasm32-unknown-unknown` and
//! embedded in the server, so that the security team's browser checks the log itself.
//!
//! The page writes one JSON request into the module's memory and reads one JSON answer back:
//!
//! - `input(len)` reserves `len` bytes for the request and returns where they are;
//! - `verify()` reads the request, verifies, and returns the answer's length;
//! - `output()` returns where the answer is.
//!
//! The request holds the room's published keys, the fingerprint the auditor pinned, the served
//! entries and signed checkpoint, and the last checkpoint this browser verified (if any). The
//! answer says what was verified, or where the log first goes wrong. Nothing here trusts the
//! server: the fingerprint is checked against the pinned one before any signature is believed.
//! No JavaScript glue is generated: three exported functions and the module's memory are the
//! whole interface, and the module imports nothing.

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::{Value, json};
use strongroom_verify::RoomPublicKeys;
use strongroom_verify::export::{export_line, verify_export};

thread_local! {
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[derive(Deserialize)]
struct Entry {
    index: u64,
    entry: String,
    tree_head_signature: String,
}

#[derive(Deserialize)]
struct Request {
    public_keys: String,
    pinned_fingerprint: String,
    checkpoint: String,
    previous: Option<String>,
    entries: Vec<Entry>,
}

fn normalized(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn answer(request: &[u8]) -> Value {
    let request: Request = match serde_json::from_slice(request) {
        Ok(r) => r,
        Err(e) => return json!({"ok": false, "stage": "request", "message": e.to_string()}),
    };
    let keys = match RoomPublicKeys::parse(&request.public_keys) {
        Ok(k) => k,
        Err(e) => {
            return json!({"ok": false, "stage": "keys",
                "message": format!("the room's published keys do not parse: {e}")});
        }
    };
    let fingerprint = keys.fingerprint();
    if normalized(&fingerprint) != normalized(&request.pinned_fingerprint) {
        return json!({"ok": false, "stage": "keys", "fingerprint": fingerprint,
            "message": format!(
                "the room presents keys with fingerprint {fingerprint}, not the pinned {}: do not trust this log",
                request.pinned_fingerprint.trim())});
    }
    let verifier = match keys.verifier() {
        Ok(v) => v,
        Err(e) => return json!({"ok": false, "stage": "keys", "message": e.to_string()}),
    };
    let mut export = String::new();
    for (position, e) in request.entries.iter().enumerate() {
        if e.index != position as u64 {
            return json!({"ok": false, "stage": "log", "entry": position,
                "message": format!("the server sent entry {} where entry {position} belongs: entries were dropped, reordered or inserted", e.index)});
        }
        match export_line(e.index, &e.entry, &e.tree_head_signature) {
            Ok(line) => {
                export.push_str(&line);
                export.push('\n');
            }
            Err(err) => {
                return json!({"ok": false, "stage": "log", "entry": err.entry, "message": err.message});
            }
        }
    }
    match verify_export(
        &export,
        &request.checkpoint,
        request.previous.as_deref(),
        &verifier,
    ) {
        Ok(v) => json!({
            "ok": true,
            "fingerprint": fingerprint,
            "entries": v.entries,
            "size": v.checkpoint.size,
            "root": base64_root(&v.checkpoint.root),
            "checkpoint": request.checkpoint,
            "previous_size": v.previous.map(|p| p.size),
        }),
        Err(e) => json!({"ok": false, "stage": "log", "entry": e.entry, "message": e.message}),
    }
}

fn base64_root(root: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(root)
}

/// Reserves `len` bytes for the request and returns their address in the module's memory.
#[unsafe(no_mangle)]
pub extern "C" fn input(len: usize) -> *mut u8 {
    INPUT.with(|i| {
        let mut i = i.borrow_mut();
        i.clear();
        i.resize(len, 0);
        i.as_mut_ptr()
    })
}

/// Verifies the request written at `input`'s address; returns the answer's length.
#[unsafe(no_mangle)]
pub extern "C" fn verify() -> usize {
    let request = INPUT.with(|i| std::mem::take(&mut *i.borrow_mut()));
    let text = answer(&request).to_string().into_bytes();
    let len = text.len();
    OUTPUT.with(|o| *o.borrow_mut() = text);
    len
}

/// The answer's address in the module's memory.
#[unsafe(no_mangle)]
pub extern "C" fn output() -> *const u8 {
    OUTPUT.with(|o| o.borrow().as_ptr())
}
