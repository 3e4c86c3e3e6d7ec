//! A change to the room's state and the audit entry that records it, committed together.
//!
//! Every mutation of the room goes through a [`Change`]: it begins a write on the room's writer
//! (a savepoint in a transaction shared with the writes beside it, see [`crate::group_commit`]),
//! the caller makes its writes on [`Change::conn`], and
//! [`Change::commit`] appends the entry in the same transaction and commits both. A crash at
//! any point leaves either the change with its entry or neither; dropping a `Change` without
//! committing rolls everything back.

use sqlx::SqliteConnection;
use strongroom_verify::event::Event;

use super::{Room, RoomError};
use crate::group_commit::WriteTx;

/// An open change: writes made on [`Change::conn`] commit with one audit entry.
pub struct Change<'r> {
    room: &'r Room,
    tx: WriteTx,
}

impl<'r> Change<'r> {
    pub(super) async fn begin(room: &'r Room) -> Result<Change<'r>, RoomError> {
        let tx = room.writer().begin().await?;
        Ok(Change { room, tx })
    }

    /// The connection to make the change's writes on.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }

    /// Appends `events`, in order, in the change's transaction and commits them all with it;
    /// returns the index of the last.
    pub async fn commit_all(mut self, events: Vec<Event>) -> Result<u64, RoomError> {
        let audit = self.room.audit();
        let mut last = None;
        for event in &events {
            last = Some(audit.append_in(&mut self.tx, event).await?);
        }
        self.tx.commit().await?;
        match last {
            Some(appended) => {
                audit.committed(&appended)?;
                Ok(appended.index)
            }
            None => Ok(0),
        }
    }

    /// Appends `event` in the change's transaction and commits both; returns the
    /// entry's index.
    pub async fn commit(mut self, event: Event) -> Result<u64, RoomError> {
        let audit = self.room.audit();
        let appended = audit.append_in(&mut self.tx, &event).await?;
        fail::fail_point!("change.before_commit");
        self.tx.commit().await?;
        fail::fail_point!("change.after_commit");
        audit.committed(&appended)?;
        Ok(appended.index)
    }
}
