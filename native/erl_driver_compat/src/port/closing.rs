//! Closing a port on request from Erlang with flush-before-close:
//! [`close`] runs the driver's `flush` when the port's queue is not empty
//! and the port stays [`Closed::Flushing`] until the queue empties;
//! `settle` and `finish_flush` end such a port. [`Gate`] says which ports
//! (open only, or also flushing) a run reaches.

use super::callbacks::{mark_closed, terminate};
use super::state::{PortState, Status};
use super::{ExitReason, Port};
use crate::context::CallbackCtx;
use crate::effects::Action;
use crate::queue::PendingClose;

/// Which ports a run reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    /// Open ports only.
    Open,
    /// Open ports, and ports whose close waits for their queue.
    OpenOrFlushing,
}

/// How a close asked for from Erlang went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The port is gone (or was not open).
    Now,
    /// The port's queue was not empty: its `flush` callback ran and the
    /// port closes once the queue is empty. Meanwhile it is unreachable
    /// except for `port_control`, `port_call` and `port_info`, its links
    /// must be signalled now, and it ignores messages and exit signals.
    Flushing,
}

/// Closes `port` on request from Erlang (`port_close`, `{Owner, close}`,
/// an exit signal): as [`terminate`], except that a port whose queue is
/// not empty first calls the driver's `flush` and stays, closing, until
/// the queue is empty (native flush-before-close). `send_closed`: the
/// connected process gets `{Port, closed}` when a delayed close ends.
pub fn close(ctx: &CallbackCtx, port: &Port, reason: ExitReason, send_closed: bool) -> Closed {
    let Some(st) = ctx.state_of(port) else {
        return Closed::Now;
    };
    if st.status() != Status::Open {
        return Closed::Now;
    }
    if port.queue.is_empty() {
        terminate(ctx, port, reason, None);
        return Closed::Now;
    }
    st.set_status(Status::Closing);
    port.queue.start_flush(PendingClose {
        reason,
        send_closed,
        in_close: true,
    });
    if let Some(flush) = port.driver.entry().flush {
        let data = st.data();
        // SAFETY: flush is the driver's callback, called with the data
        // start returned; no borrow of port data is held across it.
        ctx.enter(|| unsafe { flush(data) });
    }
    // Output from flush is dropped: natively the port is closing.
    drop(ctx.take_late());
    port.queue.close_returned();
    if st.status() == Status::Closed {
        // The driver failed its port in flush.
        return Closed::Now;
    }
    if port.queue.is_empty() {
        finish_flush(ctx, port, st, false);
        return Closed::Now;
    }
    Closed::Flushing
}

/// Ends a closing port whose queue is empty, as natively after each of
/// the port's tasks.
pub(super) fn settle(ctx: &CallbackCtx) {
    let port = ctx.port();
    let st = ctx.state();
    if st.status() == Status::Closing
        && port.queue.pending().is_some_and(|p| !p.in_close)
        && port.queue.is_empty()
    {
        finish_flush(ctx, port, st, true);
    }
}

/// Ends a port whose close waited for its queue: `stop` runs (what it
/// emits is dropped, the port being closing), the port is closed. `later`:
/// the close that started the wait has returned, so the port process must
/// now be told to exit, and `{Port, closed}` goes to the connected process
/// if the close asked for it; otherwise that close does both, as for a
/// port closed at once.
pub(super) fn finish_flush(ctx: &CallbackCtx, port: &Port, st: &PortState, later: bool) {
    let Some(pending) = port.queue.end_flush() else {
        return;
    };
    if let Some(stop) = port.driver.entry().stop {
        let data = st.data();
        // SAFETY: stop is the driver's callback, called once with the data
        // start returned; no borrow of port data is held across it.
        ctx.enter(|| unsafe { stop(data) });
    }
    drop(ctx.take_late());
    let connected = st.connected();
    mark_closed(ctx, port, st);
    let reason = match pending.reason {
        ExitReason::External if later => ExitReason::Normal,
        ExitReason::External => return,
        reason => reason,
    };
    if later && pending.send_closed {
        let port_pid = port.pid;
        ctx.emit(&connected, |env| {
            use rustler::Encoder;
            (port_pid, crate::atoms::closed()).encode(env)
        });
    }
    ctx.act(Action::ExitPort {
        port: port.pid,
        reason,
        unlink: None,
        late: Vec::new(),
    });
}
