//! `/preview`: the buffer as it would be sent, read a piece at a time through the
//! [`PreviewSource`] handle the HTTP endpoints hold.

use super::Core;
use bytes::Bytes;

/// What `/preview` reads: whether telemetry is on, and the waiting events a piece at a
/// time.
pub trait PreviewSource: Send + Sync {
    /// False while telemetry is off: nothing waits.
    fn enabled(&self) -> bool;

    /// The next piece of `{"batch":[...]}` after `cursor`; `None` at the end.
    fn preview_chunk(&self, cursor: &mut PreviewCursor) -> Option<Bytes>;
}

/// Bytes of events in one piece of `/preview`.
pub const PREVIEW_CHUNK: usize = 64 * 1024;

/// Where a `/preview` reader is: see [`PreviewSource::preview_chunk`].
#[derive(Clone, Debug, Default)]
pub struct PreviewCursor {
    after: Option<u64>,
    /// The opening `{"batch":[` was written.
    opened: bool,
    /// At least one event was written.
    started: bool,
    done: bool,
}

impl PreviewSource for Core {
    fn enabled(&self) -> bool {
        Core::enabled(self)
    }

    /// The next piece of `/preview`, `{"batch":[...]}` with each waiting event exactly as
    /// it is sent: about [`PREVIEW_CHUNK`] bytes (or one event, if larger), `None` at the
    /// end. The lock is held only to take the page's handles (shared bytes), never while
    /// the piece is written out, so a reader holds one piece at a time whatever the size
    /// of the buffer. Events that arrive meanwhile are shown too; events sent or dropped
    /// meanwhile may be shown or not.
    fn preview_chunk(&self, cursor: &mut PreviewCursor) -> Option<Bytes> {
        if cursor.done {
            return None;
        }
        let (page, last) = self.ledger().page_after(cursor.after, PREVIEW_CHUNK);
        let mut out = Vec::with_capacity(page.iter().map(|b| b.len() + 1).sum::<usize>() + 16);
        if !cursor.opened {
            out.extend_from_slice(br#"{"batch":["#);
            cursor.opened = true;
        }
        for json in &page {
            if cursor.started {
                out.push(b',');
            }
            cursor.started = true;
            out.extend_from_slice(json);
        }
        if page.is_empty() {
            out.extend_from_slice(b"]}");
            cursor.done = true;
        }
        cursor.after = last;
        Some(Bytes::from(out))
    }
}
