//! The manifest custom section a partner's module carries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_contract::manifest::Manifest;

fuzz_target!(init: {
    strongroom_fuzz::seed("manifest", &[("empty", b"SRMF\x01".to_vec())]);
}, |data: &[u8]| {
    let _ = Manifest::decode(data);
});
