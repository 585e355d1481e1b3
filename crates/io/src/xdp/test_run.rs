//! `bpf(BPF_PROG_TEST_RUN)`: run a loaded program on a frame given by user space. Used by
//! the packet generator ([`super::r#gen`], live frames) and by the fast path's golden tests.

use std::io;

use crate::syscall;

/// The `bpf(2)` command number.
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The `BPF_PROG_TEST_RUN` member of `union bpf_attr` (kernel 5.18 layout).
#[repr(C)]
#[derive(Default)]
pub(crate) struct TestRunAttr {
    pub(crate) prog_fd: u32,
    pub(crate) retval: u32,
    pub(crate) data_size_in: u32,
    pub(crate) data_size_out: u32,
    pub(crate) data_in: u64,
    pub(crate) data_out: u64,
    pub(crate) repeat: u32,
    pub(crate) duration: u32,
    pub(crate) ctx_size_in: u32,
    pub(crate) ctx_size_out: u32,
    pub(crate) ctx_in: u64,
    pub(crate) ctx_out: u64,
    pub(crate) flags: u32,
    pub(crate) cpu: u32,
    pub(crate) batch_size: u32,
    pub(crate) pad: u32,
}

/// Issue `BPF_PROG_TEST_RUN` with `attr`; the kernel fills in `retval`, `duration` and
/// `data_size_out`.
///
/// # Safety
///
/// Every pointer in `attr` must be valid for its size field for the whole call: `data_in`
/// for reading `data_size_in` bytes, `ctx_in` for reading `ctx_size_in` bytes, `data_out`
/// (when not 0) for writing `data_size_out` bytes and `ctx_out` (when not 0) for writing
/// `ctx_size_out` bytes, none of them aliased by anything else alive.
pub(crate) unsafe fn prog_test_run(attr: &mut TestRunAttr) -> io::Result<()> {
    // SAFETY: `attr` is a `bpf_attr` prefix of its own size, live and exclusively borrowed;
    // the buffers it points to are valid as this function's contract requires.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            std::ptr::from_mut(attr),
            size_of::<TestRunAttr>(),
        )
    };
    syscall(r as i32).map(drop)
}
