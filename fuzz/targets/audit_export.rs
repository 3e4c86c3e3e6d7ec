//! An audit log export against the room's signed checkpoint: the verifier accepts the room's
//! exact bytes and nothing else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_fuzz::fixture;
use strongroom_verify::export::verify_export;

fuzz_target!(init: {
    let f = fixture();
    strongroom_fuzz::seed("audit_export", &[("export", f.export.as_bytes().to_vec())]);
}, |data: &[u8]| {
    let f = fixture();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if verify_export(text, &f.checkpoint, None, &f.verifier).is_ok() {
        assert_eq!(text, f.export, "an export that is not the room's verified");
    }
    let _ = verify_export(&f.export, text, None, &f.verifier);
});
