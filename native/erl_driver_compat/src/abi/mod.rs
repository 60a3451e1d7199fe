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

/// A buffer a driver passed as `ptr`/`len`, as a slice (empty for a NULL
/// pointer or a length of 0).
///
/// # Safety
/// `ptr` must be NULL, or `len` must be 0, or `ptr` must be readable for
/// `len` bytes that nobody writes for `'b`.
pub unsafe fn driver_bytes<'b>(ptr: *const u8, len: usize) -> &'b [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: ptr is non-NULL and len > 0, so the caller guarantees len
        // readable bytes there, unwritten for 'b; u8 needs no alignment and
        // has no invalid values.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

impl IOVec {
    /// Segment `i`, copied out of the driver's array.
    ///
    /// # Safety
    /// `self.iov` must point at `self.vsize` readable segments and
    /// `i < self.vsize`.
    pub unsafe fn segment(&self, i: usize) -> SysIOVec {
        // SAFETY: i < vsize, the length of the iov array (caller's contract).
        let at = unsafe { self.iov.add(i) };
        // SAFETY: at is an aligned, initialised element of that array.
        unsafe { at.read() }
    }

    /// Replaces segment `i` in the driver's array (the runtime advances a
    /// driver's vector in place when it skips bytes).
    ///
    /// # Safety
    /// `self.iov` must point at `self.vsize` segments the driver lets us
    /// write, and `i < self.vsize`; no reference to the element may be
    /// live.
    pub unsafe fn set_segment(&self, i: usize, seg: SysIOVec) {
        // SAFETY: i < vsize, the length of the iov array (caller's contract).
        let at = unsafe { self.iov.add(i) };
        // SAFETY: at is an aligned element the driver lets us write, and no
        // reference to it is held while it is written.
        unsafe { at.write(seg) };
    }

    /// Consumes `skip` bytes at the front of the driver's vector, as the
    /// runtime does: whole segments (and empty ones) are passed over, the
    /// segment where the skipping ends is advanced in place. Returns the
    /// index of the first segment left, or `None` when the segments run
    /// out first.
    ///
    /// # Safety
    /// `self.iov` must point at `self.vsize` segments, readable and
    /// writable by us (the driver lets the runtime advance them), with no
    /// reference to them live.
    pub unsafe fn skip_front(&self, mut skip: usize) -> Option<usize> {
        let vsize = self.vsize.max(0) as usize;
        let mut first = 0;
        loop {
            if first >= vsize {
                return None;
            }
            // SAFETY: first < vsize (checked above); the caller's contract.
            let mut seg = unsafe { self.segment(first) };
            if seg.iov_len <= skip {
                skip -= seg.iov_len;
                first += 1;
            } else {
                seg.iov_base = seg.iov_base.wrapping_add(skip);
                seg.iov_len -= skip;
                skip = 0;
                // SAFETY: first < vsize; the caller lets us write it.
                unsafe { self.set_segment(first, seg) };
            }
            if skip == 0 {
                return Some(first);
            }
        }
    }

    /// The driver binary of segment `i` (NULL without a `binv` array).
    ///
    /// # Safety
    /// `self.binv` must be NULL or point at `self.vsize` readable entries,
    /// and `i < self.vsize`.
    pub unsafe fn segment_binary(&self, i: usize) -> *mut DrvBinary {
        if self.binv.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: binv is non-NULL, so it has vsize entries, and i < vsize.
        let at = unsafe { self.binv.add(i) };
        // SAFETY: at is an aligned, initialised entry of that array.
        unsafe { at.read() }
    }
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

/// `ErlIOVec` of interface 1.5 and earlier (24 bytes: `int size`;
/// spec/ABI_VERSIONS.md §4), as seed-era drivers see it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LegacyIOVec {
    /// Number of segments.
    pub vsize: c_int,
    /// Total number of bytes.
    pub size: c_int,
    /// The segments.
    pub iov: *mut SysIOVec,
    /// One driver binary per segment, holding its data.
    pub binv: *mut *mut DrvBinary,
}

/// `output` callback of interface 1.5 and earlier (`int len`).
pub type LegacyOutputFn = unsafe extern "C" fn(DrvData, *mut c_char, c_int);
/// `outputv` callback of interface 1.5 and earlier (24-byte `ErlIOVec`).
pub type LegacyOutputvFn = unsafe extern "C" fn(DrvData, *mut LegacyIOVec);
/// `control` callback of interface 1.5 and earlier: `int` lengths and an
/// `int` return (only `eax` is defined: called through this type, the
/// compiler sign-extends it).
pub type LegacyControlFn =
    unsafe extern "C" fn(DrvData, c_uint, *mut c_char, c_int, *mut *mut c_char, c_int) -> c_int;
/// `call` callback of interface 1.5 and earlier (as [`LegacyControlFn`],
/// plus the flags).
pub type LegacyCallFn = unsafe extern "C" fn(
    DrvData,
    c_uint,
    *mut c_char,
    c_int,
    *mut *mut c_char,
    c_int,
    *mut c_uint,
) -> c_int;

/// `ErlDrvEntry` of interface 3.2 and later (176 bytes).
///
/// A driver's own entry may be shorter (older interface versions, §2 of
/// spec/ABI_VERSIONS.md): never form a reference to one; read it through an
/// [`EntryView`], which yields an owned copy of this type with the fields
/// the driver's version lacks set to `None`/0.
#[repr(C)]
#[derive(Clone, Copy)]
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

/// Offset of `extended_marker`: the first byte after the slots that every
/// runtime reads (0–120) whatever the driver's version.
pub const ENTRY_MARKER_OFFSET: usize = std::mem::offset_of!(DrvEntry, extended_marker);
/// Bytes that must be readable to learn the declared version (the marker,
/// major and minor version and flags).
pub const ENTRY_VERSION_END: usize = std::mem::offset_of!(DrvEntry, handle2);

/// Size of the `ErlDrvEntry` a driver declaring this marker and version was
/// compiled with (spec/ABI_VERSIONS.md §2): marker-less entries are 96–128
/// bytes (only 0–128 is ever read, as native runtimes do), 1.0–1.2 end after
/// `process_exit` (160), 1.3–3.1 after `stop_select` (168), 3.2 and later
/// after `emergency_close` (176; read by native runtimes only for
/// `major >= 3 && minor >= 2`).
pub fn declared_entry_size(marker: c_int, major: c_int, minor: c_int) -> usize {
    use std::mem::offset_of;
    if marker != EXTENDED_MARKER {
        ENTRY_MARKER_OFFSET
    } else if major < 1 || (major == 1 && minor < 3) {
        offset_of!(DrvEntry, stop_select)
    } else if major >= 3 && minor >= 2 {
        std::mem::size_of::<DrvEntry>()
    } else {
        offset_of!(DrvEntry, emergency_close)
    }
}

/// The first `len` bytes of a driver's `ErlDrvEntry`, read field by field
/// with raw unaligned reads; nothing at or after `len` is ever touched.
pub struct EntryView {
    base: *const u8,
    len: usize,
}

impl EntryView {
    /// A view of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base+len` must be readable for the view's lifetime.
    pub unsafe fn new(base: *const u8, len: usize) -> EntryView {
        EntryView { base, len }
    }

    /// The value of type `T` at `offset`, if it lies inside the view.
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let end = offset.checked_add(std::mem::size_of::<T>())?;
        if end > self.len {
            return None;
        }
        // SAFETY: offset <= end <= len, and `new`'s caller guarantees
        // base..base+len is one readable object, so base + offset stays
        // inside it.
        let at = unsafe { self.base.add(offset) };
        // SAFETY: at..at+size_of::<T>() is offset..end, inside the bytes
        // readable for the view's lifetime (`new`); read_unaligned needs no
        // alignment, and every T used here (integers, raw pointers,
        // `Option<fn>`) is valid for any bit pattern (a function pointer
        // option is None for 0, Some otherwise).
        Some(unsafe { std::ptr::read_unaligned(at.cast::<T>()) })
    }

    /// `extended_marker`, or 0 when the view ends before it.
    pub fn marker(&self) -> c_int {
        self.read(ENTRY_MARKER_OFFSET).unwrap_or(0)
    }

    /// `(major_version, minor_version)`, or `(0, 0)` when absent.
    pub fn version(&self) -> (c_int, c_int) {
        use std::mem::offset_of;
        (
            self.read(offset_of!(DrvEntry, major_version)).unwrap_or(0),
            self.read(offset_of!(DrvEntry, minor_version)).unwrap_or(0),
        )
    }

    /// An owned copy: the fields inside the view, `None`/0/NULL for the
    /// others.
    pub fn to_entry(&self) -> DrvEntry {
        use std::mem::offset_of;
        macro_rules! field {
            ($f:ident, $default:expr) => {
                self.read(offset_of!(DrvEntry, $f)).unwrap_or($default)
            };
            ($f:ident) => {
                self.read(offset_of!(DrvEntry, $f)).flatten()
            };
        }
        DrvEntry {
            init: field!(init),
            start: field!(start),
            stop: field!(stop),
            output: field!(output),
            ready_input: field!(ready_input),
            ready_output: field!(ready_output),
            driver_name: field!(driver_name, std::ptr::null_mut()),
            finish: field!(finish),
            handle: field!(handle, std::ptr::null_mut()),
            control: field!(control),
            timeout: field!(timeout),
            outputv: field!(outputv),
            ready_async: field!(ready_async),
            flush: field!(flush),
            call: field!(call),
            unused_event_callback: field!(unused_event_callback, std::ptr::null_mut()),
            extended_marker: field!(extended_marker, 0),
            major_version: field!(major_version, 0),
            minor_version: field!(minor_version, 0),
            driver_flags: field!(driver_flags, 0),
            handle2: field!(handle2, std::ptr::null_mut()),
            process_exit: field!(process_exit),
            stop_select: field!(stop_select),
            emergency_close: field!(emergency_close),
        }
    }
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
        assert_eq!(size_of::<LegacyIOVec>(), 24);
        assert_eq!(offset_of!(LegacyIOVec, size), 4);
        assert_eq!(offset_of!(LegacyIOVec, iov), 8);
        assert_eq!(offset_of!(LegacyIOVec, binv), 16);
    }

    /// A 3.1 driver's entry is 168 bytes; whatever follows it is not ours
    /// (here: a non-null garbage word where 3.2 has `emergency_close`).
    /// The view of exactly the declared size copies the 3.1 fields and
    /// leaves `emergency_close` out; under Miri any read past the 168-byte
    /// buffer would be reported.
    #[test]
    fn view_reads_only_the_declared_entry() {
        let mut full: DrvEntry = EntryView {
            base: [0u8; 0].as_ptr(),
            len: 0,
        }
        .to_entry();
        unsafe extern "C" fn stop_select(_: DrvEvent, _: *mut c_void) {}
        unsafe extern "C" fn stop(_: DrvData) {}
        full.stop = Some(stop);
        full.stop_select = Some(stop_select);
        full.extended_marker = EXTENDED_MARKER;
        full.major_version = 3;
        full.minor_version = 1;
        full.driver_flags = 1;
        let declared = declared_entry_size(EXTENDED_MARKER, 3, 1);
        assert_eq!(declared, 168);
        // SAFETY: `full` is a live, initialised DrvEntry of
        // size_of::<DrvEntry>() >= declared bytes, borrowed only while its
        // first `declared` bytes are copied into a buffer of exactly that
        // size (a boxed slice: nothing after it).
        let bytes: Box<[u8]> = unsafe {
            std::slice::from_raw_parts((&full as *const DrvEntry).cast::<u8>(), declared)
        }
        .into();
        // SAFETY: `bytes` owns `declared` readable bytes and outlives
        // `view` (both live to the end of the test).
        let view = unsafe { EntryView::new(bytes.as_ptr(), bytes.len()) };
        assert_eq!(view.marker(), EXTENDED_MARKER);
        assert_eq!(view.version(), (3, 1));
        let copy = view.to_entry();
        assert_eq!(copy.stop.map(|f| f as usize), full.stop.map(|f| f as usize));
        assert!(copy.stop_select.is_some());
        assert!(copy.emergency_close.is_none());
        assert_eq!(copy.driver_flags, 1);
        assert!(copy.init.is_none() && copy.driver_name.is_null());
    }

    /// Marker-less and short entries: nothing past the view is read, the
    /// version reads as 0.0 and the declared sizes follow the ABI table.
    #[test]
    fn short_views_default_the_missing_fields() {
        // 96 bytes, a pre-R7B entry.
        let words = [usize::MAX; 12];
        // SAFETY: `words` is 96 readable bytes that outlive `view`.
        let view = unsafe { EntryView::new(words.as_ptr().cast(), 96) };
        assert_eq!(view.marker(), 0);
        assert_eq!(view.version(), (0, 0));
        let copy = view.to_entry();
        assert!(copy.outputv.is_some());
        assert!(copy.ready_async.is_none() && copy.call.is_none());
        assert_eq!(declared_entry_size(0, 3, 3), 128);
        assert_eq!(declared_entry_size(EXTENDED_MARKER, 1, 2), 160);
        assert_eq!(declared_entry_size(EXTENDED_MARKER, 1, 3), 168);
        assert_eq!(declared_entry_size(EXTENDED_MARKER, 2, 3), 168);
        assert_eq!(declared_entry_size(EXTENDED_MARKER, 3, 2), 176);
        assert_eq!(declared_entry_size(EXTENDED_MARKER, 3, 3), 176);
    }
}
