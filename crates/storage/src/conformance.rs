//! The conformance suite every `Engine` implementation must pass.
//!
//! Each check takes a fresh, empty engine from `new_engine` and panics with a
//! description of the first behaviour that differs from the contract.
//! `run_all` runs every check; engine crates call it from their tests.

use crate::{Cf, Engine, WriteBatch};

/// Runs every conformance check, each on a fresh engine.
pub fn run_all(new_engine: &dyn Fn() -> Box<dyn Engine>) {
    point_reads_and_writes(new_engine().as_ref());
    column_families_are_separate(new_engine().as_ref());
    batches_apply_in_order(new_engine().as_ref());
    delete_range(new_engine().as_ref());
    scans_are_ordered_and_bounded(new_engine().as_ref());
    snapshots_are_isolated(new_engine().as_ref());
    long_scans_page_correctly(new_engine().as_ref());
    visits_stop_where_told(new_engine().as_ref());
}

fn put(engine: &dyn Engine, cf: Cf, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(cf, key, value);
    engine.write(&batch, false).unwrap();
}

fn scan(engine: &dyn Engine, cf: Cf, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    engine
        .scan(cf, start, end)
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Put, overwrite, get and delete single keys, including empty keys and
/// values and keys with 0x00 and 0xFF bytes.
pub fn point_reads_and_writes(engine: &dyn Engine) {
    assert_eq!(engine.get(Cf::Default, b"a").unwrap(), None);
    put(engine, Cf::Default, b"a", b"1");
    assert_eq!(engine.get(Cf::Default, b"a").unwrap(), Some(b"1".to_vec()));
    put(engine, Cf::Default, b"a", b"2");
    assert_eq!(engine.get(Cf::Default, b"a").unwrap(), Some(b"2".to_vec()));
    put(engine, Cf::Default, b"", b"");
    assert_eq!(engine.get(Cf::Default, b"").unwrap(), Some(Vec::new()));
    put(engine, Cf::Default, b"\x00\xff", b"\xff\x00");
    assert_eq!(
        engine.get(Cf::Default, b"\x00\xff").unwrap(),
        Some(b"\xff\x00".to_vec())
    );
    let mut batch = WriteBatch::new();
    batch.delete(Cf::Default, b"a");
    engine.write(&batch, true).unwrap();
    assert_eq!(engine.get(Cf::Default, b"a").unwrap(), None);
}

/// The same key in two families holds two values.
pub fn column_families_are_separate(engine: &dyn Engine) {
    for (i, cf) in Cf::ALL.iter().enumerate() {
        put(engine, *cf, b"k", &[i as u8]);
    }
    for (i, cf) in Cf::ALL.iter().enumerate() {
        assert_eq!(
            engine.get(*cf, b"k").unwrap(),
            Some(vec![i as u8]),
            "{cf:?}"
        );
        assert_eq!(scan(engine, *cf, b"", b"").len(), 1, "{cf:?}");
    }
}

/// Later operations in a batch win over earlier ones; one batch may span
/// families.
pub fn batches_apply_in_order(engine: &dyn Engine) {
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"x", b"1");
    batch.delete(Cf::Default, b"x");
    batch.put(Cf::Default, b"y", b"1");
    batch.put(Cf::Default, b"y", b"2");
    batch.put(Cf::Raft, b"applied", b"7");
    assert_eq!(batch.len(), 5);
    engine.write(&batch, true).unwrap();
    assert_eq!(engine.get(Cf::Default, b"x").unwrap(), None);
    assert_eq!(engine.get(Cf::Default, b"y").unwrap(), Some(b"2".to_vec()));
    assert_eq!(
        engine.get(Cf::Raft, b"applied").unwrap(),
        Some(b"7".to_vec())
    );
    engine.write(&WriteBatch::new(), true).unwrap();
}

/// DeleteRange removes exactly `[start, end)`, and an empty end removes the
/// whole tail, including keys made of 0xFF bytes.
pub fn delete_range(engine: &dyn Engine) {
    for key in [&b"a"[..], b"b", b"ba", b"c", b"d", &[0xff; 20]] {
        put(engine, Cf::Default, key, b"v");
    }
    put(engine, Cf::Lock, b"b", b"other family");
    let mut batch = WriteBatch::new();
    batch.delete_range(Cf::Default, b"b", b"c");
    engine.write(&batch, false).unwrap();
    let keys: Vec<_> = scan(engine, Cf::Default, b"", b"")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec(), vec![0xff; 20]]
    );
    let mut batch = WriteBatch::new();
    batch.delete_range(Cf::Default, b"c", b"");
    engine.write(&batch, false).unwrap();
    let keys: Vec<_> = scan(engine, Cf::Default, b"", b"")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"a".to_vec()]);
    assert_eq!(
        engine.get(Cf::Lock, b"b").unwrap(),
        Some(b"other family".to_vec())
    );
}

/// Scans return keys in byte order within `[start, end)`.
pub fn scans_are_ordered_and_bounded(engine: &dyn Engine) {
    for key in [&b"b"[..], b"a", b"ab", b"\x00", b"\xff", b"c"] {
        put(engine, Cf::Default, key, key);
    }
    let keys: Vec<_> = scan(engine, Cf::Default, b"", b"")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let expect: Vec<Vec<u8>> = vec![
        b"\x00".to_vec(),
        b"a".to_vec(),
        b"ab".to_vec(),
        b"b".to_vec(),
        b"c".to_vec(),
        b"\xff".to_vec(),
    ];
    assert_eq!(keys, expect);
    let keys: Vec<_> = scan(engine, Cf::Default, b"a", b"c")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, expect[1..4].to_vec());
    assert!(scan(engine, Cf::Default, b"c", b"a").is_empty());
    assert!(scan(engine, Cf::Default, b"b", b"b").is_empty());
    for (key, value) in scan(engine, Cf::Default, b"", b"") {
        assert_eq!(key, value);
    }
}

/// A snapshot sees neither later writes nor later deletes.
pub fn snapshots_are_isolated(engine: &dyn Engine) {
    put(engine, Cf::Default, b"a", b"old");
    put(engine, Cf::Default, b"b", b"old");
    let snapshot = engine.snapshot();
    put(engine, Cf::Default, b"a", b"new");
    put(engine, Cf::Default, b"c", b"new");
    let mut batch = WriteBatch::new();
    batch.delete(Cf::Default, b"b");
    engine.write(&batch, false).unwrap();
    assert_eq!(
        snapshot.get(Cf::Default, b"a").unwrap(),
        Some(b"old".to_vec())
    );
    assert_eq!(
        snapshot.get(Cf::Default, b"b").unwrap(),
        Some(b"old".to_vec())
    );
    assert_eq!(snapshot.get(Cf::Default, b"c").unwrap(), None);
    let seen = snapshot.scan_chunk(Cf::Default, b"", b"", 100).unwrap();
    assert_eq!(
        seen,
        vec![
            (b"a".to_vec(), b"old".to_vec()),
            (b"b".to_vec(), b"old".to_vec())
        ]
    );
    assert_eq!(
        engine.get(Cf::Default, b"a").unwrap(),
        Some(b"new".to_vec())
    );
}

/// A scan longer than one page returns every key exactly once, in order.
pub fn long_scans_page_correctly(engine: &dyn Engine) {
    let mut batch = WriteBatch::new();
    for i in 0..2000u32 {
        batch.put(
            Cf::Default,
            i.to_be_bytes().to_vec(),
            i.to_le_bytes().to_vec(),
        );
        // Keys that extend another key by a 0x00 byte must not be skipped.
        if i % 100 == 0 {
            let mut key = i.to_be_bytes().to_vec();
            key.push(0);
            batch.put(Cf::Default, key, b"ext".to_vec());
        }
    }
    engine.write(&batch, true).unwrap();
    let all = scan(engine, Cf::Default, b"", b"");
    assert_eq!(all.len(), 2020);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    let part = scan(
        engine,
        Cf::Default,
        &500u32.to_be_bytes(),
        &1500u32.to_be_bytes(),
    );
    assert_eq!(part.len(), 1010);
}

/// A snapshot's `visit` shows the entries of its span in order, from the
/// first at or after the start, past a page of them, and stops where the
/// visitor says; a visitor's error ends it with that error.
pub fn visits_stop_where_told(engine: &dyn Engine) {
    for i in 0..600u32 {
        put(engine, Cf::Write, &i.to_be_bytes(), &i.to_le_bytes());
    }
    let snapshot = engine.snapshot();
    let visited = |start: u32, end: Option<u32>, stop_after: usize| {
        let mut seen = Vec::new();
        let end = end.map_or(Vec::new(), |end| end.to_be_bytes().to_vec());
        snapshot
            .visit(Cf::Write, &start.to_be_bytes(), &end, &mut |key, value| {
                let key = u32::from_be_bytes(key.try_into().unwrap());
                assert_eq!(value, key.to_le_bytes(), "value of {key}");
                seen.push(key);
                Ok(seen.len() < stop_after)
            })
            .unwrap();
        seen
    };
    assert_eq!(visited(7, None, 1), vec![7]);
    assert_eq!(visited(7, Some(10), 100), vec![7, 8, 9]);
    assert_eq!(visited(10, Some(10), 100), Vec::<u32>::new());
    assert_eq!(visited(1, None, 1000), (1..600).collect::<Vec<_>>());
    assert_eq!(visited(20, None, 300), (20..320).collect::<Vec<_>>());
    let failed = snapshot.visit(Cf::Write, b"", b"", &mut |_, _| {
        Err(crate::Error::Corruption("the visitor's own".into()))
    });
    assert!(
        matches!(&failed, Err(crate::Error::Corruption(why)) if why == "the visitor's own"),
        "{failed:?}"
    );
}
