//! Group commit on the room's one writing connection: the writes waiting in line commit as one
//! transaction, a write that fails or panics takes only itself back, and nobody who lets go of
//! the connection can leave a group (or SQLite's lock) behind.

use std::time::{Duration, Instant};

use strongroom::keys::OperatorSecret;
use strongroom::room::{Room, RoomError};
use strongroom_verify::event::Event;

const PATIENCE: Duration = Duration::from_secs(20);

fn room() -> (tempfile::TempDir, Room) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let room = rt
        .block_on(Room::create(
            &dir.path().join("room"),
            "group-commit",
            &OperatorSecret::new(b"test secret"),
        ))
        .expect("room");
    (dir, room)
}

fn note(n: u64) -> Event {
    Event::LogExercised {
        actor: "test".into(),
        n,
        note: "group commit".into(),
    }
}

/// Waits until `n` writers are in line for the connection.
fn in_line(room: &Room, n: usize) {
    let started = Instant::now();
    while room.db().sqlite_writer().expect("a SQLite room").waiting() != n {
        assert!(started.elapsed() < PATIENCE, "writers never got in line");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Writes one entry in its own change.
fn write_note(room: &Room, n: u64) -> Result<u64, RoomError> {
    room.write(|change| change.record(note(n)))
}

/// The `n` of every durable entry that has one, in log order, as another connection reads them.
fn durable_notes(room: &Room) -> Vec<(u64, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(room.audit().entries(0))
        .expect("entries")
        .iter()
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.entry).ok()?;
            (v["event"] == "log.exercised").then(|| (e.index, v["n"].as_u64().unwrap_or(u64::MAX)))
        })
        .collect()
}

fn log_size(room: &Room) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(room.audit().size()).expect("size")
}

#[test]
fn the_writes_waiting_in_line_commit_as_one_group() {
    let (_dir, room) = room();
    let before = log_size(&room);
    let (groups_before, _) = room
        .db()
        .sqlite_writer()
        .expect("a SQLite room")
        .committed();
    std::thread::scope(|scope| {
        let room = &room;
        let first = scope.spawn(move || {
            room.write(|change| {
                let index = change.record(note(0))?;
                // Eight more writers line up behind this one before it lets go.
                let others: Vec<_> = (1..=8)
                    .map(|n| scope.spawn(move || write_note(room, n)))
                    .collect();
                in_line(room, 8);
                Ok::<_, RoomError>((index, others))
            })
        });
        let (_, others) = first.join().expect("first thread").expect("first commits");
        for other in others {
            other.join().expect("thread").expect("each commits");
        }
    });
    let (groups, writes) = room
        .db()
        .sqlite_writer()
        .expect("a SQLite room")
        .committed();
    assert_eq!(
        groups - groups_before,
        1,
        "nine writes in line should share one commit"
    );
    assert!(writes >= 9);
    // All nine are durable, the first first, with no gap in the log.
    let notes = durable_notes(&room);
    assert_eq!(
        notes.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (before..before + 9).collect::<Vec<_>>(),
        "entries as committed: {notes:?}"
    );
    assert_eq!(notes[0].1, 0);
    let mut ns: Vec<u64> = notes.iter().map(|(_, n)| *n).collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..9).collect::<Vec<_>>());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (checkpoint, _) = rt.block_on(room.audit().checkpoint()).expect("checkpoint");
    let tree = rt.block_on(room.audit().tree()).expect("tree");
    assert_eq!(checkpoint.size, before + 9);
    assert_eq!(tree.root(checkpoint.size).ok(), Some(checkpoint.root));
}

/// Writes note 1, and while holding the connection lets `next` (a write of its own) line up
/// behind it; returns once note 1 is committed, with what `next` returned.
fn behind_a_first_write<T: Send>(
    room: &Room,
    next: impl FnOnce(&Room) -> T + Send,
) -> std::thread::Result<T> {
    std::thread::scope(|scope| {
        let next = room
            .write(|change| {
                change.record(note(1))?;
                let next = scope.spawn(|| next(room));
                in_line(room, 1);
                Ok::<_, RoomError>(next)
            })
            .expect("the first write's group commits");
        next.join()
    })
}

#[test]
fn a_failed_write_takes_back_only_itself() {
    let (_dir, room) = room();
    let before = log_size(&room);
    // The next in line writes an entry and then fails: only its write goes.
    let failed = behind_a_first_write(&room, |room| {
        room.write(|change| {
            change.record(note(99))?;
            Err::<(), _>(RoomError::Invalid("changed its mind".into()))
        })
    });
    assert!(failed.expect("thread").is_err());
    write_note(&room, 2).expect("the next write commits");
    assert_eq!(
        durable_notes(&room),
        vec![(before, 1), (before + 1, 2)],
        "the failed write's entry is gone and left no gap"
    );
}

#[test]
fn a_write_that_panics_takes_back_only_itself_and_the_group_still_commits() {
    let (_dir, room) = room();
    let before = log_size(&room);
    // The next in line takes the connection from the first write, then panics holding it:
    // nobody else is in line to commit the first write's group.
    let panicked = behind_a_first_write(&room, |room| {
        room.write(|change| -> Result<(), RoomError> {
            change.record(note(99))?;
            panic!("a writer fails while holding the connection");
        })
    });
    assert!(panicked.is_err(), "the panic reaches its thread");
    assert_eq!(durable_notes(&room), vec![(before, 1)]);
    write_note(&room, 2).expect("the writer is still usable");
    assert_eq!(durable_notes(&room), vec![(before, 1), (before + 1, 2)]);
}

#[test]
fn a_failed_write_leaves_the_database_unlocked_for_other_processes() {
    let (dir, room) = room();
    let failed = room.write(|change| {
        change.record(note(7))?;
        Err::<(), _>(RoomError::Invalid("no".into()))
    });
    assert!(failed.is_err());
    // Another process (here: another connection, with no patience of its own) can write now.
    let path = dir.path().join("room").join("room.db");
    let mut other = rusqlite::Connection::open(&path).expect("other connection");
    other.busy_timeout(Duration::ZERO).expect("timeout");
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("the room's writer does not hold the database");
    tx.rollback().expect("rollback");
    assert!(durable_notes(&room).is_empty(), "the failed write is gone");
}

/// A lazy write (one that need not be flushed before it returns) never shares a group with a
/// durable one it was committed before: a durable write arriving at an open lazy group commits
/// that group first and flushes its own; a lazy write joining a durable group is flushed with it.
#[test]
fn a_durable_write_never_commits_in_a_lazy_group() {
    use strongroom::group_commit::WriteError;
    let (_dir, room) = room();
    let lazy_note = |conn: &strongroom::room::db::Conn<'_>| -> Result<(), WriteError> {
        conn.execute(
            "UPDATE audit_frontier SET size = size WHERE id = 1",
            strongroom::params![],
        )?;
        Ok(())
    };
    let (groups_before, _) = room
        .db()
        .sqlite_writer()
        .expect("a SQLite room")
        .committed();
    std::thread::scope(|scope| {
        let room = &room;
        let durable = room
            .db()
            .write_lazily(|conn| {
                lazy_note(conn)?;
                let durable = scope.spawn(move || write_note(room, 1));
                in_line(room, 1);
                Ok::<_, WriteError>(durable)
            })
            .expect("the lazy write commits");
        durable
            .join()
            .expect("thread")
            .expect("the durable write commits");
    });
    let (groups, _) = room
        .db()
        .sqlite_writer()
        .expect("a SQLite room")
        .committed();
    assert_eq!(
        groups - groups_before,
        2,
        "the lazy group and the durable one"
    );
    std::thread::scope(|scope| {
        let room = &room;
        let lazy = room
            .write(|change| {
                change.record(note(2))?;
                let lazy = scope.spawn(move || room.db().write_lazily(lazy_note));
                in_line(room, 1);
                Ok::<_, RoomError>(lazy)
            })
            .expect("the durable write commits");
        lazy.join()
            .expect("thread")
            .expect("the lazy write commits");
    });
    let (after, _) = room
        .db()
        .sqlite_writer()
        .expect("a SQLite room")
        .committed();
    assert_eq!(
        after - groups,
        1,
        "a lazy write joins an open durable group"
    );
    assert_eq!(durable_notes(&room).len(), 2);
}

/// A deferred write: made, its group left open for the next writes, which commit it.
fn defer_note(room: &Room, n: u64) -> strongroom::group_commit::Pending {
    let (_, pending) = room
        .db()
        .write_deferred(|conn| room.audit().append_in(conn, &note(n)))
        .expect("the deferred write is made");
    pending
}

#[test]
fn a_deferred_write_commits_with_the_next_durable_write() {
    let (_dir, room) = room();
    let (groups_before, _) = room
        .db()
        .sqlite_writer()
        .expect("a SQLite room")
        .committed();
    let pending = defer_note(&room, 1);
    assert!(
        durable_notes(&room).is_empty(),
        "a deferred write is not visible before its group commits"
    );
    // A lazy write (a worker's claim) joins the open group and leaves it open.
    room.db()
        .sqlite_writer()
        .expect("a SQLite room")
        .write_lazily(|conn| {
            conn.execute_batch("SELECT 1")
                .map_err(strongroom::group_commit::WriteError::from)
        })
        .expect("the lazy write");
    assert!(
        durable_notes(&room).is_empty(),
        "the lazy write committed the group"
    );
    write_note(&room, 2).expect("the durable write commits");
    let (groups, _) = room
        .db()
        .sqlite_writer()
        .expect("a SQLite room")
        .committed();
    assert_eq!(groups - groups_before, 1, "one commit for the three writes");
    assert_eq!(
        durable_notes(&room)
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    // The durable write committed the group: settling finds it done, without its grace.
    let started = Instant::now();
    pending.settle(PATIENCE).expect("settled");
    assert!(started.elapsed() < PATIENCE);
}

#[test]
fn a_deferred_write_alone_commits_itself_after_its_grace() {
    let (_dir, room) = room();
    let grace = Duration::from_millis(30);
    let pending = defer_note(&room, 1);
    let started = Instant::now();
    pending.settle(grace).expect("settled");
    assert!(started.elapsed() >= grace, "it did not wait for its grace");
    assert_eq!(
        durable_notes(&room)
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>(),
        vec![1]
    );
    // Dropping one commits it at once.
    drop(defer_note(&room, 2));
    assert_eq!(
        durable_notes(&room)
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
}
