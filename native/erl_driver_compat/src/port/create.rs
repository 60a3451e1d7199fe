//! Making ports: the constructor `Port::new` (shared by `open_port` and
//! `driver_create_port`), [`Port::create`] (`driver_create_port`) and
//! [`CreatedLocks`], the locks of the ports a callback created under
//! port-level locking, held until that callback's run ends.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustler::LocalPid;

use super::lock::PortLock;
use super::state::{PortOptions, PortState};
use super::Port;
use crate::context::CallbackCtx;
use crate::driver::Driver;
use crate::queue::PortQueue;
use crate::terms::pid_term;

static PORT_NUMBERS: AtomicU64 = AtomicU64::new(1);

impl Port {
    /// A port of `driver` (counted by the caller) whose process is `pid`,
    /// connected to `owner`, named `command`: under the driver's lock, or
    /// its own with port-level locking.
    pub(super) fn new(
        driver: Arc<Driver>,
        pid: LocalPid,
        owner: LocalPid,
        command: &[u8],
    ) -> Arc<Port> {
        let lock = if driver.port_locking {
            Arc::new(PortLock::new())
        } else {
            driver.lock.clone()
        };
        Arc::new(Port {
            driver,
            pid,
            pid_term: pid_term(&pid),
            command: command.to_vec(),
            number: PORT_NUMBERS.fetch_add(1, Ordering::Relaxed),
            queue: PortQueue::new(),
            lock,
            state: PortState::new(owner),
            select: Default::default(),
        })
    }

    /// `driver_create_port` for `creator` (a port whose lock the callback
    /// `ctx` runs under holds): a new open port of the same driver whose
    /// process is `pid` (an idle one, see
    /// [`super::registry::take_idle`]), connected to `owner`, named `name`,
    /// with `data` as its `ErlDrvData`. As natively, `start` is not
    /// called, the port is in list mode and inherits the creating port's
    /// parallelism. `None` when the driver is being unloaded.
    ///
    /// Under port-level locking the new port's lock is taken now and held
    /// until the creating callback's run ends: natively the creating
    /// callback may use the new port until it returns, and nothing else
    /// reaches it before.
    pub fn create(
        ctx: &CallbackCtx,
        creator: &Port,
        pid: LocalPid,
        owner: LocalPid,
        name: &[u8],
        data: crate::abi::DrvData,
    ) -> Option<Arc<Port>> {
        let creator_st = ctx.state_of(creator)?;
        if !creator.driver.port_opened() {
            return None;
        }
        let port = Port::new(creator.driver.clone(), pid, owner, name);
        if !port.shares_lock_with(creator) {
            ctx.created_locks().hold(port.clone());
        }
        let st = ctx
            .state_of(&port)
            .unwrap_or_else(|| unreachable!("the new port's lock is held by this callback"));
        let options = PortOptions {
            parallelism: creator_st.options().parallelism,
            ..PortOptions::default()
        };
        st.started(data, options);
        super::registry::register_created(&port);
        Some(port)
    }
}

/// The locks of the ports a callback created under port-level locking
/// ([`Port::create`]): taken at creation, released when the callback's
/// run ends ([`CreatedLocks::release`], or when the value drops), after the
/// creating port's own lock was taken and before it is released.
#[derive(Default)]
pub struct CreatedLocks(RefCell<Vec<Arc<Port>>>);

impl CreatedLocks {
    /// Takes the lock of `port`, a port nothing else can reach yet (so
    /// the lock is free), until this value drops.
    pub(super) fn hold(&self, port: Arc<Port>) {
        port.lock.lock();
        self.0.borrow_mut().push(port);
    }

    /// The state of `port` when its lock is one held here.
    pub fn state_of<'a>(&self, port: &'a Port) -> Option<&'a PortState> {
        let held = self
            .0
            .borrow()
            .iter()
            .any(|p| Arc::ptr_eq(&p.lock, &port.lock));
        // The lock is held by this thread (taken in `hold`, released only
        // by `release` (`&mut self`: no `&self` borrow is alive then) or
        // when `self` drops, and `self` belongs to a context, which is not
        // Send): the cells may be reached from here, as through `Held`.
        held.then_some(&port.state)
    }

    /// Releases the locks (the creating run has ended).
    pub(crate) fn release(&mut self) {
        for port in self.0.get_mut().drain(..) {
            // SAFETY: `hold` locked this lock on this thread; this is the
            // one matching unlock.
            unsafe { port.lock.unlock() };
        }
    }
}

impl Drop for CreatedLocks {
    fn drop(&mut self) {
        self.release();
    }
}
