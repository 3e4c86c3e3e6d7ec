//! A change to the room's state and the audit entries that record it, committed together.
//!
//! Every mutation of the room is a [`Room::write`]: the caller makes its writes on
//! [`Change::conn`] and records its entries with [`Change::record`], all in one write on the
//! room's writer (a savepoint in a transaction shared with the writes beside it, see
//! [`crate::group_commit`]). A crash at any point leaves either the change with its entries or
//! neither; a write that returns an error (or panics) takes everything it did back.

use strongroom_verify::event::Event;

use super::{Room, RoomError};
use crate::audit_log::log::{Appended, AuditLog};
use crate::group_commit::WriteError;
use crate::room::db::Conn;

/// An open change: writes made on [`Change::conn`] commit with the entries recorded.
pub struct Change<'c, 'd> {
    conn: &'c Conn<'d>,
    audit: &'c AuditLog<'c>,
    last: Option<Appended>,
}

impl<'d> Change<'_, 'd> {
    /// The connection to make the change's writes on.
    pub fn conn(&self) -> &Conn<'d> {
        self.conn
    }

    /// Appends `event` to the log in the change's transaction; returns its index.
    pub fn record(&mut self, event: Event) -> Result<u64, RoomError> {
        self.record_all(vec![event])
    }

    /// Appends `events`, in order, in the change's transaction; returns the index of the last.
    pub fn record_all(&mut self, events: Vec<Event>) -> Result<u64, RoomError> {
        let Some(last) = self.audit.append_all_in(self.conn, &events)?.pop() else {
            return Ok(self.last.as_ref().map_or(0, |a| a.index));
        };
        let index = last.index;
        self.last = Some(last);
        Ok(index)
    }

    /// The last entry recorded so far, with its checkpoint and proof.
    pub fn last_recorded(&self) -> Option<&Appended> {
        self.last.as_ref()
    }
}

impl Room {
    /// Makes a change to the room's state with `f` and commits it, with the entries `f`
    /// recorded, as one write on this thread. Returns once both are durable; an error from `f`
    /// takes back everything it did.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Change<'_, '_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<RoomError> + From<WriteError>,
    {
        self.write_with_entry(f).map(|(value, _)| value)
    }

    /// [`Room::write`], also returning the last entry recorded (with its checkpoint and proof).
    pub fn write_with_entry<T, E>(
        &self,
        f: impl FnOnce(&mut Change<'_, '_>) -> Result<T, E>,
    ) -> Result<(T, Option<Appended>), E>
    where
        E: From<RoomError> + From<WriteError>,
    {
        let audit = self.audit();
        let (value, last) = self.db().write(|conn| {
            let mut change = Change {
                conn,
                audit: &audit,
                last: None,
            };
            let value = f(&mut change)?;
            if change.last.is_some() {
                fail::fail_point!("change.before_commit");
            }
            Ok::<_, E>((value, change.last))
        })?;
        if let Some(appended) = &last {
            fail::fail_point!("change.after_commit");
            audit.committed(appended).map_err(RoomError::from)?;
        }
        Ok((value, last))
    }
}
