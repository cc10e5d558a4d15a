//! The daemon's output: Segment with a write key, [`Discard`] without (capture and
//! preview only).

use crate::flush::{Batch, Dropped, Limits};
use crate::flush::{Delivery, Discard, Output};
use crate::segment::Sender;

/// The output the flusher is given.
pub enum SegmentOutput {
    Segment(Sender),
    Discard(Discard),
}

impl Output for SegmentOutput {
    fn limits(&self) -> Limits {
        match self {
            SegmentOutput::Segment(s) => s.limits(),
            SegmentOutput::Discard(d) => d.limits(),
        }
    }

    async fn deliver(&self, batches: &[Batch]) -> Delivery {
        match self {
            SegmentOutput::Segment(s) => s.deliver(batches).await,
            SegmentOutput::Discard(d) => d.deliver(batches).await,
        }
    }

    fn reaches_receiver(&self) -> bool {
        matches!(self, SegmentOutput::Segment(_))
    }

    fn report_unsendable(&self, dropped: &[Dropped]) {
        match self {
            SegmentOutput::Segment(s) => s.report_unsendable(dropped),
            SegmentOutput::Discard(d) => d.report_unsendable(dropped),
        }
    }
}
