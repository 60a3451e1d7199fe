//! Data from `port_command` on its way into a driver: flattened for
//! `output`, or cut into an `ErlIOVec` for `outputv` with the segment rules
//! of the native runtime (small pieces merged into one copied segment,
//! large binaries as segments of their own, our own exposed driver binaries
//! passed without copying).

use std::os::raw::c_int;

use rustler::sys::{self, ErlNifBinary, ErlNifTerm as ERL_NIF_TERM};
use rustler::{Binary, Term};

use crate::abi::{DrvBinary, IOVec, SysIOVec};
use crate::binary::{self, DriverBinary};

/// Binaries larger than this get a segment of their own
/// (`ERL_SMALL_IO_BIN_LIMIT` in the runtime: 4 × the 64-byte heap limit).
pub const SMALL_IO_BIN_LIMIT: usize = 256;

/// `data` as one contiguous buffer: a binary as it is, an iolist copied
/// once. `None` when `data` is not iodata.
pub fn flatten(data: Term<'_>) -> Option<Binary<'_>> {
    if data.is_binary() {
        data.decode::<Binary>().ok()
    } else {
        Binary::from_iolist(data).ok()
    }
}

enum Piece {
    /// Bytes in `IoVecBuf::copy` at this offset.
    Copied { offset: usize, len: usize },
    /// A range of one of our exposed driver binaries (one reference held).
    Shared {
        bin: DriverBinary,
        offset: usize,
        len: usize,
    },
}

/// An `ErlIOVec` and the storage it points into.
pub struct IoVecBuf {
    iov: Vec<SysIOVec>,
    binv: Vec<*mut DrvBinary>,
    /// Distinct binaries we hold one reference to.
    owned: Vec<DriverBinary>,
    vec: IOVec,
}

impl IoVecBuf {
    /// Builds the vector for `data`; `None` when it is not iodata.
    pub fn from_iodata(data: Term<'_>) -> Option<IoVecBuf> {
        let mut walker = Walker {
            copy: Vec::new(),
            pieces: Vec::new(),
            open_copy: None,
        };
        if !walker.walk(data.as_c_arg(), data.get_env().as_c_arg()) {
            walker.release();
            return None;
        }
        Some(walker.finish())
    }

    /// Total number of bytes.
    pub fn total(&self) -> usize {
        self.vec.size
    }

    /// The vector to pass to the driver.
    pub fn as_mut_ptr(&mut self) -> *mut IOVec {
        self.vec.iov = self.iov.as_mut_ptr();
        self.vec.binv = self.binv.as_mut_ptr();
        &mut self.vec
    }
}

impl Drop for IoVecBuf {
    fn drop(&mut self) {
        for bin in self.owned.drain(..) {
            bin.release();
        }
    }
}

struct Walker {
    copy: Vec<u8>,
    pieces: Vec<Piece>,
    /// Index of the copied piece being extended, if the last piece is one.
    open_copy: Option<usize>,
}

impl Walker {
    fn push_copied(&mut self, bytes: &[u8]) {
        let offset = self.copy.len();
        self.copy.extend_from_slice(bytes);
        match self.open_copy {
            Some(i) => {
                if let Piece::Copied { len, .. } = &mut self.pieces[i] {
                    *len += bytes.len();
                }
            }
            None => {
                self.pieces.push(Piece::Copied {
                    offset,
                    len: bytes.len(),
                });
                self.open_copy = Some(self.pieces.len() - 1);
            }
        }
    }

    fn push_binary(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if bytes.len() <= SMALL_IO_BIN_LIMIT {
            self.push_copied(bytes);
            return;
        }
        self.open_copy = None;
        if let Some((bin, offset)) = binary::find_exposed(bytes.as_ptr(), bytes.len()) {
            self.pieces.push(Piece::Shared {
                bin,
                offset,
                len: bytes.len(),
            });
        } else {
            let offset = self.copy.len();
            self.copy.extend_from_slice(bytes);
            self.pieces.push(Piece::Copied {
                offset,
                len: bytes.len(),
            });
        }
    }

    /// Walks an iolist without recursion. Returns false on non-iodata.
    fn walk(&mut self, term: ERL_NIF_TERM, env: *mut sys::ErlNifEnv) -> bool {
        let mut stack = vec![term];
        while let Some(t) = stack.pop() {
            // SAFETY: all terms come from `env`, the live env of the NIF
            // call; the out-parameters are valid locals.
            unsafe {
                let mut bin: ErlNifBinary = std::mem::zeroed();
                if sys::enif_is_binary(env, t) != 0 {
                    if sys::enif_inspect_binary(env, t, &mut bin) == 0 {
                        return false;
                    }
                    self.push_binary(std::slice::from_raw_parts(bin.data, bin.size));
                    continue;
                }
                let mut head = ERL_NIF_TERM::default();
                let mut tail = ERL_NIF_TERM::default();
                if sys::enif_get_list_cell(env, t, &mut head, &mut tail) != 0 {
                    // Tail first so that the head is processed next.
                    if sys::enif_is_empty_list(env, tail) == 0 {
                        if sys::enif_is_binary(env, tail) == 0
                            && sys::enif_is_list(env, tail) == 0
                        {
                            return false;
                        }
                        stack.push(tail);
                    }
                    let mut byte: c_int = 0;
                    if sys::enif_get_int(env, head, &mut byte) != 0 {
                        if !(0..=255).contains(&byte) {
                            return false;
                        }
                        self.push_copied(&[byte as u8]);
                    } else if sys::enif_is_binary(env, head) != 0
                        || sys::enif_is_list(env, head) != 0
                    {
                        stack.push(head);
                    } else {
                        return false;
                    }
                    continue;
                }
                if sys::enif_is_empty_list(env, t) != 0 {
                    continue;
                }
                return false;
            }
        }
        true
    }

    fn release(&mut self) {
        for piece in self.pieces.drain(..) {
            if let Piece::Shared { bin, .. } = piece {
                bin.release();
            }
        }
    }

    fn finish(mut self) -> IoVecBuf {
        let mut owned = Vec::new();
        let copy_bin = if self.copy.is_empty() {
            None
        } else {
            let bin = DriverBinary::alloc(self.copy.len()).unwrap_or_else(|| {
                std::alloc::handle_alloc_error(
                    std::alloc::Layout::from_size_align(self.copy.len(), 16)
                        .unwrap_or(std::alloc::Layout::new::<u8>()),
                )
            });
            // SAFETY: the binary holds copy.len() bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(self.copy.as_ptr(), bin.data(), self.copy.len())
            };
            owned.push(bin);
            Some(bin)
        };
        // The first element is reserved (empty), as in the native runtime,
        // so that a driver may put a header in front without reallocating.
        let mut iov = vec![SysIOVec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }];
        let mut binv: Vec<*mut DrvBinary> = vec![std::ptr::null_mut()];
        let mut total = 0usize;
        for piece in self.pieces.drain(..) {
            let (bin, offset, len) = match piece {
                Piece::Copied { offset, len } => match copy_bin {
                    Some(b) => (b, offset, len),
                    None => continue,
                },
                Piece::Shared { bin, offset, len } => {
                    owned.push(bin);
                    (bin, offset, len)
                }
            };
            // SAFETY: offset + len lies within the binary.
            let base = unsafe { bin.data().add(offset) };
            iov.push(SysIOVec {
                iov_base: base.cast(),
                iov_len: len,
            });
            binv.push(bin.as_ptr());
            total += len;
        }
        let vsize = iov.len() as c_int;
        IoVecBuf {
            iov,
            binv,
            owned,
            vec: IOVec {
                vsize,
                size: total,
                iov: std::ptr::null_mut(),
                binv: std::ptr::null_mut(),
            },
        }
    }
}
