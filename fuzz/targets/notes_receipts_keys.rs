//! Signed notes, checkpoints, receipts and the room's published keys. The fuzzed text is also
//! signed with a real key, so the parsers behind the signature check are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom::keys::RoomPublicKeys;
use strongroom_fuzz::fixture;
use strongroom_verify::checkpoint::Checkpoint;
use strongroom_verify::note::{Note, Verifier};
use strongroom_verify::receipt::Receipt;

fuzz_target!(init: {
    let f = fixture();
    strongroom_fuzz::seed(
        "notes_receipts_keys",
        &[
            ("checkpoint", f.checkpoint.as_bytes().to_vec()),
            ("room.pub", f.room.public.encode().into_bytes()),
        ],
    );
}, |data: &[u8]| {
    let f = fixture();
    if let Ok(note) = Note::parse_bytes(data) {
        let _ = note.verify(&f.verifier);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Verifier::parse(text);
    let _ = RoomPublicKeys::parse(text);
    let _ = Checkpoint::open(text, &f.verifier);
    let _ = Receipt::verify(text, &f.verifier);
    if let Ok(signed) = f.signer.sign(text) {
        let _ = Checkpoint::open(&signed, &f.verifier);
        let _ = Receipt::verify(&signed, &f.verifier);
    }
});
