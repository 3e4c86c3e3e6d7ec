//! Group commit on the room's one writing connection: the writes waiting in line commit as one
//! transaction, a dropped write takes only itself back, and nobody who lets go of the connection
//! can leave a group (or SQLite's lock) behind.

use std::str::FromStr;
use std::time::Duration;

use futures_util::FutureExt;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use strongroom::keys::OperatorSecret;
use strongroom::room::Room;
use strongroom_verify::event::Event;

const PATIENCE: Duration = Duration::from_secs(20);

async fn room() -> (tempfile::TempDir, Room) {
    let dir = tempfile::tempdir().expect("tempdir");
    let room = Room::create(
        &dir.path().join("room"),
        "group-commit",
        &OperatorSecret::new(b"test secret"),
    )
    .await
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
async fn in_line(room: &Room, n: usize) {
    let started = std::time::Instant::now();
    while room.writer().waiting() != n {
        assert!(started.elapsed() < PATIENCE, "writers never got in line");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The `n` of every durable entry that has one, in log order, as another connection reads them.
async fn durable_notes(room: &Room) -> Vec<(u64, u64)> {
    room.audit()
        .entries(0)
        .await
        .expect("entries")
        .iter()
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.entry).ok()?;
            (v["event"] == "log.exercised").then(|| (e.index, v["n"].as_u64().unwrap_or(u64::MAX)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writes_waiting_in_line_commit_as_one_group() {
    let (_dir, room) = room().await;
    let before = room.audit().size().await.expect("size");
    let (groups_before, _) = room.writer().committed();
    let first = room.change().await.expect("first change");
    let others = (1..=8).map(|n| {
        let room = &room;
        async move { room.change().await?.commit(note(n)).await }
    });
    let others = futures_util::future::join_all(others);
    let first = async {
        in_line(&room, 8).await;
        first.commit(note(0)).await
    };
    let (first, others) = tokio::time::timeout(PATIENCE, async { tokio::join!(first, others) })
        .await
        .expect("every write returns");
    first.expect("first commits");
    for other in others {
        other.expect("each commits");
    }
    let (groups, writes) = room.writer().committed();
    assert_eq!(
        groups - groups_before,
        1,
        "nine writes in line should share one commit"
    );
    assert!(writes >= 9);
    // All nine are durable, in the order they took the connection, with no gap in the log.
    let notes = durable_notes(&room).await;
    assert_eq!(
        notes,
        (0..9).map(|n| (before + n, n)).collect::<Vec<_>>(),
        "entries as committed"
    );
    let (checkpoint, _) = room.audit().checkpoint().await.expect("checkpoint");
    let tree = room.audit().tree().await.expect("tree");
    assert_eq!(checkpoint.size, before + 9);
    assert_eq!(tree.root(checkpoint.size).ok(), Some(checkpoint.root));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_write_takes_back_only_itself() {
    let (_dir, room) = room().await;
    let before = room.audit().size().await.expect("size");
    let first = room.change().await.expect("first change");
    let dropped = async {
        let mut change = room.change().await.expect("second change");
        room.audit()
            .append_in(change.conn(), &note(99))
            .await
            .expect("written, not committed");
        drop(change);
    };
    let last = async { room.change().await?.commit(note(2)).await };
    let first = async {
        in_line(&room, 2).await;
        first.commit(note(1)).await
    };
    let (first, (), last) =
        tokio::time::timeout(PATIENCE, async { tokio::join!(first, dropped, last) })
            .await
            .expect("every write returns");
    first.expect("first commits");
    last.expect("last commits");
    assert_eq!(
        durable_notes(&room).await,
        vec![(before, 1), (before + 1, 2)],
        "the dropped entry is gone and left no gap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_dropped_holding_the_connection_still_lets_the_group_commit() {
    let (_dir, room) = room().await;
    let first = room.change().await.expect("first change");
    // The next in line takes the connection from the first, then is dropped without a word.
    let next = async {
        let change = room.change().await.expect("second change");
        drop(change);
    };
    let first = async {
        in_line(&room, 1).await;
        first.commit(note(1)).await
    };
    let (first, ()) = tokio::time::timeout(PATIENCE, async { tokio::join!(first, next) })
        .await
        .expect("the first write's group commits although nobody is left in line");
    first.expect("first commits");
    assert_eq!(durable_notes(&room).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_giving_up_in_line_still_lets_the_group_commit() {
    let (_dir, room) = room().await;
    let first = room.change().await.expect("first change");
    let mut next = Box::pin(room.change());
    // In line: polled once, it waits for the connection.
    assert!((&mut next).now_or_never().is_none());
    assert_eq!(room.writer().waiting(), 1);
    let give_up = async {
        // Long enough for the first write to hand the connection to the one in line.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(next);
    };
    let (first, ()) = tokio::time::timeout(PATIENCE, async {
        tokio::join!(first.commit(note(1)), give_up)
    })
    .await
    .expect("the first write's group commits although the one in line gave up");
    first.expect("first commits");
    assert_eq!(durable_notes(&room).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_write_leaves_the_database_unlocked_for_other_processes() {
    let (dir, room) = room().await;
    let mut change = room.change().await.expect("change");
    room.audit()
        .append_in(change.conn(), &note(7))
        .await
        .expect("written, not committed");
    drop(change);
    // Another process (here: another connection, with no patience of its own) can write soon.
    let path = dir.path().join("room").join("room.db");
    let mut other = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .expect("options")
        .busy_timeout(Duration::ZERO)
        .connect()
        .await
        .expect("other connection");
    let started = std::time::Instant::now();
    loop {
        match other.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => {
                tx.rollback().await.expect("rollback");
                break;
            }
            Err(e) => assert!(
                started.elapsed() < PATIENCE,
                "the room's writer still holds the database: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        durable_notes(&room).await.is_empty(),
        "the dropped write is gone"
    );
}
