//! A whole sealed file from arbitrary bytes: splitting, the header's counts, and the streaming
//! check of an upload (which must refuse what it does not accept, never crash or allocate by a
//! claimed count).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom::data_at_rest::open::{SealedFile, verify_file};
use strongroom_fuzz::{fixture, scratch};

fuzz_target!(init: {
    let f = fixture();
    strongroom_fuzz::seed("sealed_file", &[("bank.sealed", f.sealed.clone())]);
}, |data: &[u8]| {
    let f = fixture();
    if let Ok(file) = SealedFile::parse(data) {
        let _ = file.open(&f.room, 1);
    }
    let path = scratch("sealed_file.input");
    if std::fs::write(&path, data).is_ok() {
        let _ = verify_file(&path, &f.room);
    }
});
