//! Both engines pass the same conformance suite.

use tessera_storage::{conformance, Engine, MemoryEngine, RocksEngine};

#[test]
fn memory_engine_conforms() {
    conformance::run_all(&|| Box::new(MemoryEngine::new()) as Box<dyn Engine>);
}

#[test]
fn rocksdb_engine_conforms() {
    let dirs = std::cell::RefCell::new(Vec::new());
    conformance::run_all(&|| {
        let dir = tempfile::tempdir().unwrap();
        let engine = RocksEngine::open(dir.path()).unwrap();
        dirs.borrow_mut().push(dir);
        Box::new(engine) as Box<dyn Engine>
    });
}

#[test]
fn rocksdb_writes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = RocksEngine::open(dir.path()).unwrap();
        let mut batch = tessera_storage::WriteBatch::new();
        batch.put(tessera_storage::Cf::Raft, b"k", b"v");
        engine.write(&batch, true).unwrap();
    }
    let engine = RocksEngine::open(dir.path()).unwrap();
    assert_eq!(
        engine.get(tessera_storage::Cf::Raft, b"k").unwrap(),
        Some(b"v".to_vec())
    );
}
