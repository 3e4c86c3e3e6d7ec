//! Authenticated but hostile content: the fuzzer's bytes replace the header or one chunk's
//! plaintext of a real dataset, which is then sealed with a real key (as anyone with the room's
//! public key can), so every input reaches the decoders behind authentication: the header
//! checks, the index, Arrow IPC, the per-chunk checks. Opening and the verify an upload gets
//! must agree: whatever verifies, opens; and the window reader (which runs read) never panics,
//! and on whatever verifies reads every customer's rows exactly as opening does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom::data_at_rest::format::Header;
use strongroom::data_at_rest::open::SealedFile;
use strongroom::data_at_rest::seal::seal_raw;
use strongroom::data_at_rest::stream::SealedSource;
use strongroom::dataset::ColumnData;
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
    // The window reader reads a file on disk.
    let path = std::env::temp_dir().join(format!("strongroom-fuzz-{}.sealed", std::process::id()));
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    let read = SealedSource::open(&path, &f.room).and_then(|source| {
        source
            .windows(7)?
            .collect::<Result<Vec<_>, _>>()
    });
    if let Ok(whole) = &opened {
        let windows = read.unwrap_or_else(|e| panic!("opens whole, but not window by window: {e}"));
        for window in &windows {
            for e in window.span.clone() {
                for (w, t) in window.tables.iter().zip(&whole.tables) {
                    let (a, b) = (w.entity_rows(e), t.entity_rows(e));
                    assert_eq!(a.len(), b.len(), "rows of entity {e} in {}", t.name);
                    for (wc, tc) in w.guest_columns.iter().zip(&t.guest_columns) {
                        assert!(same_values(&wc.data, a.clone(), &tc.data, b.clone()));
                    }
                }
            }
        }
        let covered: usize = windows.iter().map(|w| w.entities()).sum();
        assert_eq!(covered, whole.entities());
    }
});

/// Whether rows `a` of `x` hold the same values as rows `b` of `y` (floats by their bits).
fn same_values(
    x: &ColumnData,
    a: std::ops::Range<usize>,
    y: &ColumnData,
    b: std::ops::Range<usize>,
) -> bool {
    match (x, y) {
        (ColumnData::Int(x), ColumnData::Int(y)) => x[a] == y[b],
        (ColumnData::Float(x), ColumnData::Float(y)) => x[a]
            .iter()
            .map(|v| v.to_bits())
            .eq(y[b].iter().map(|v| v.to_bits())),
        (ColumnData::Bool(x), ColumnData::Bool(y)) => x[a] == y[b],
        (ColumnData::Date(x), ColumnData::Date(y)) => x[a] == y[b],
        (ColumnData::Category(x), ColumnData::Category(y)) => x[a] == y[b],
        _ => false,
    }
}
