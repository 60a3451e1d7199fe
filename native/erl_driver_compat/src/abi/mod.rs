//! `#[repr(C)]` mirrors of the types in `erl_driver.h` (x86-64, LP64).
//!
//! Only layouts live here: no behaviour. The offsets are checked by the unit
//! tests below against the table in `spec/ABI_VERSIONS.md`.

use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};

/// `ErlDrvSizeT` (size_t on Unix).
pub type SizeT = usize;
/// `ErlDrvSSizeT` (ssize_t on Unix).
pub type SSizeT = isize;
/// `ErlDrvData`: the driver's per-port state pointer.
pub type DrvData = *mut c_void;
/// `ErlDrvEvent`: an OS event (a file descriptor cast to a pointer).
pub type DrvEvent = *mut c_void;
/// `ErlDrvPort`: our opaque port handle (see `port::PortHandle`).
pub type DrvPort = *mut c_void;
/// `ErlDrvTermData`: a term value inside term specs.
pub type TermData = usize;

/// `ERL_DRV_EXTENDED_MARKER`.
pub const EXTENDED_MARKER: c_int = 0xfeee_eeed_u32 as c_int;
/// The newest interface version we implement (OTP 25's).
pub const EXTENDED_MAJOR_VERSION: c_int = 3;
/// Minor version matching [`EXTENDED_MAJOR_VERSION`].
pub const EXTENDED_MINOR_VERSION: c_int = 3;

/// `ERL_DRV_FLAG_USE_PORT_LOCKING`.
pub const FLAG_USE_PORT_LOCKING: c_int = 1;
/// `ERL_DRV_FLAG_SOFT_BUSY`.
pub const FLAG_SOFT_BUSY: c_int = 2;
/// `ERL_DRV_FLAG_NO_BUSY_MSGQ`.
pub const FLAG_NO_BUSY_MSGQ: c_int = 4;
/// `ERL_DRV_FLAG_USE_INIT_ACK`.
pub const FLAG_USE_INIT_ACK: c_int = 8;

/// `ERL_DRV_ERROR_GENERAL`.
pub const ERROR_GENERAL: isize = -1;
/// `ERL_DRV_ERROR_ERRNO`.
pub const ERROR_ERRNO: isize = -2;
/// `ERL_DRV_ERROR_BADARG`.
pub const ERROR_BADARG: isize = -3;

/// `PORT_CONTROL_FLAG_BINARY`.
pub const PORT_CONTROL_FLAG_BINARY: c_int = 1;
/// `PORT_CONTROL_FLAG_HEAVY`.
pub const PORT_CONTROL_FLAG_HEAVY: c_int = 2;
/// `PORT_FLAG_BINARY` (returned by `get_port_flags`).
pub const PORT_FLAG_BINARY: c_int = 1;
/// `PORT_FLAG_LINE` (returned by `get_port_flags`).
pub const PORT_FLAG_LINE: c_int = 2;

/// `ErlDrvBinary`: the header of a driver binary as the driver sees it.
#[repr(C)]
pub struct DrvBinary {
    /// Size of `orig_bytes` in bytes.
    pub orig_size: c_long,
    /// First byte of the data (the array continues past the struct).
    pub orig_bytes: [c_char; 1],
}

/// `SysIOVec` (layout of `struct iovec`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SysIOVec {
    /// Start of the segment.
    pub iov_base: *mut c_char,
    /// Length of the segment.
    pub iov_len: usize,
}

/// `ErlIOVec` of interface 2.0 and later.
#[repr(C)]
pub struct IOVec {
    /// Number of segments.
    pub vsize: c_int,
    /// Total number of bytes.
    pub size: SizeT,
    /// The segments.
    pub iov: *mut SysIOVec,
    /// One driver binary per segment, holding its data.
    pub binv: *mut *mut DrvBinary,
}

/// `ErlDrvMonitor`: 32 opaque bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DrvMonitor {
    /// Opaque contents.
    pub data: [u8; 32],
}

/// `ErlDrvNowData`.
#[repr(C)]
pub struct NowData {
    /// Whole megaseconds.
    pub megasecs: libc::c_ulong,
    /// Whole seconds.
    pub secs: libc::c_ulong,
    /// Whole microseconds.
    pub microsecs: libc::c_ulong,
}

/// `ErlDrvSysInfo` as of interface 3.1 (the newest); older drivers pass a
/// smaller `size` and only that prefix is written.
#[repr(C)]
pub struct SysInfo {
    /// `ERL_DRV_EXTENDED_MAJOR_VERSION` of the runtime.
    pub driver_major_version: c_int,
    /// `ERL_DRV_EXTENDED_MINOR_VERSION` of the runtime.
    pub driver_minor_version: c_int,
    /// `erlang:system_info(version)`.
    pub erts_version: *mut c_char,
    /// `erlang:system_info(otp_release)`.
    pub otp_release: *mut c_char,
    /// Non-zero: threads are supported.
    pub thread_support: c_int,
    /// Non-zero: SMP runtime.
    pub smp_support: c_int,
    /// Async thread pool size.
    pub async_threads: c_int,
    /// Number of schedulers.
    pub scheduler_threads: c_int,
    /// `ERL_NIF_MAJOR_VERSION`.
    pub nif_major_version: c_int,
    /// `ERL_NIF_MINOR_VERSION`.
    pub nif_minor_version: c_int,
    /// Non-zero: dirty schedulers exist.
    pub dirty_scheduler_support: c_int,
}

/// `output` callback (2.0+).
pub type OutputFn = unsafe extern "C" fn(DrvData, *mut c_char, SizeT);
/// `control` and `call` style callbacks share this prefix.
pub type ControlFn =
    unsafe extern "C" fn(DrvData, c_uint, *mut c_char, SizeT, *mut *mut c_char, SizeT) -> SSizeT;
/// `call` callback (2.0+).
pub type CallFn = unsafe extern "C" fn(
    DrvData,
    c_uint,
    *mut c_char,
    SizeT,
    *mut *mut c_char,
    SizeT,
    *mut c_uint,
) -> SSizeT;

/// `ErlDrvEntry` of interface 3.2 and later (176 bytes).
#[repr(C)]
pub struct DrvEntry {
    /// Called once after loading.
    pub init: Option<unsafe extern "C" fn() -> c_int>,
    /// Called by `open_port`.
    pub start: Option<unsafe extern "C" fn(DrvPort, *mut c_char) -> DrvData>,
    /// Called when the port closes.
    pub stop: Option<unsafe extern "C" fn(DrvData)>,
    /// Data from `port_command`.
    pub output: Option<OutputFn>,
    /// An input event is ready.
    pub ready_input: Option<unsafe extern "C" fn(DrvData, DrvEvent)>,
    /// An output event is ready.
    pub ready_output: Option<unsafe extern "C" fn(DrvData, DrvEvent)>,
    /// The driver's name.
    pub driver_name: *mut c_char,
    /// Called before unloading.
    pub finish: Option<unsafe extern "C" fn()>,
    /// Reserved (written by very old runtimes).
    pub handle: *mut c_void,
    /// `port_control`.
    pub control: Option<ControlFn>,
    /// Timer expiry.
    pub timeout: Option<unsafe extern "C" fn(DrvData)>,
    /// Vectored data from `port_command`.
    pub outputv: Option<unsafe extern "C" fn(DrvData, *mut IOVec)>,
    /// An async job finished.
    pub ready_async: Option<unsafe extern "C" fn(DrvData, *mut c_void)>,
    /// The port is closing with data still queued.
    pub flush: Option<unsafe extern "C" fn(DrvData)>,
    /// `port_call`.
    pub call: Option<CallFn>,
    /// Unused since OTP 21 (`event` before).
    pub unused_event_callback: *mut c_void,
    /// `ERL_DRV_EXTENDED_MARKER` for extended drivers.
    pub extended_marker: c_int,
    /// Interface major version the driver was built for.
    pub major_version: c_int,
    /// Interface minor version the driver was built for.
    pub minor_version: c_int,
    /// `ERL_DRV_FLAG_*`.
    pub driver_flags: c_int,
    /// Reserved.
    pub handle2: *mut c_void,
    /// A monitored process exited.
    pub process_exit: Option<unsafe extern "C" fn(DrvData, *mut DrvMonitor)>,
    /// An event selected with `ERL_DRV_USE` may be closed.
    pub stop_select: Option<unsafe extern "C" fn(DrvEvent, *mut c_void)>,
    /// Called instead of `stop` when the runtime halts.
    pub emergency_close: Option<unsafe extern "C" fn(DrvData)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn entry_layout_matches_abi_table() {
        assert_eq!(offset_of!(DrvEntry, handle), 64);
        assert_eq!(offset_of!(DrvEntry, control), 72);
        assert_eq!(offset_of!(DrvEntry, outputv), 88);
        assert_eq!(offset_of!(DrvEntry, call), 112);
        assert_eq!(offset_of!(DrvEntry, extended_marker), 128);
        assert_eq!(offset_of!(DrvEntry, driver_flags), 140);
        assert_eq!(offset_of!(DrvEntry, handle2), 144);
        assert_eq!(offset_of!(DrvEntry, process_exit), 152);
        assert_eq!(offset_of!(DrvEntry, stop_select), 160);
        assert_eq!(size_of::<DrvEntry>(), 176);
    }

    #[test]
    fn struct_layouts_match_abi_table() {
        assert_eq!(offset_of!(DrvBinary, orig_bytes), 8);
        assert_eq!(size_of::<IOVec>(), 32);
        assert_eq!(offset_of!(IOVec, iov), 16);
        assert_eq!(offset_of!(IOVec, binv), 24);
        assert_eq!(size_of::<SysIOVec>(), 16);
        assert_eq!(size_of::<SysInfo>(), 56);
        assert_eq!(size_of::<DrvMonitor>(), 32);
    }
}
