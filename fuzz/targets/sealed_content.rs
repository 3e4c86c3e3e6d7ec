//! Authenticated but hostile content: the fuzzer's bytes replace the header or one chunk's
//! plaintext of a real dataset, which is then sealed with a real key (as anyone with the room's
//! public key can), so every input reaches the decoders behind authentication: the header
//! checks, the index, Arrow IPC, the per-chunk checks. Opening and the verify an upload gets
//! must agree: whatever verifies, opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom::data_at_rest::format::Header;
use strongroom::data_at_rest::open::SealedFile;
use strongroom::data_at_rest::seal::seal_raw;
use strongroom_fuzz::fixture;

fuzz_target!(init: {
    let f = fixture();
    let mut seeds = vec![(
        "header".to_string(),
        [&[0u8][..], &serde_json::to_vec(&f.header).unwrap_or_default()].concat(),
    )];
    for (i, chunk) in f.chunks.iter().enumerate() {
        seeds.push((format!("chunk-{i}"), [&[i as u8 + 1][..], chunk].concat()));
    }
    let seeds: Vec<(&str, Vec<u8>)> = seeds.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    strongroom_fuzz::seed("sealed_content", &seeds);
}, |data: &[u8]| {
    let f = fixture();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut header = f.header.clone();
    let mut chunks = f.chunks.clone();
    if selector == 0 {
        match serde_json::from_slice::<Header>(rest) {
            Ok(h) => header = h,
            Err(_) => return,
        }
    } else {
        let i = (selector as usize - 1) % chunks.len();
        chunks[i] = rest.to_vec();
    }
    let Ok(bytes) = seal_raw(&f.room.public, &f.party, header, &chunks) else {
        return;
    };
    let Ok(file) = SealedFile::parse(&bytes) else {
        return;
    };
    let verified = file.verify(&f.room, 1);
    let opened = file.open(&f.room, 1);
    assert_eq!(
        verified.is_ok(),
        opened.is_ok(),
        "verify and open disagree: {verified:?} / {:?}",
        opened.as_ref().err()
    );
});
