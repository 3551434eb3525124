//! The block emulation's libraries, loaded on demand: a kernel's handler (or
//! a Rust handler) run by a block of POSIX threads that emulates a CUDA
//! block, so a missing barrier or a race between the requests of one batch
//! shows up without a GPU ([`BridgeBuilder::emulate_block`]).
//!
//! ringbridge-build compiles each kernel source a third time with
//! `RB_EMULATE_BLOCK` into `lib<stem>_emulation.so` (see
//! `kernels/host/block_emulation.cpp`); ringbridge's own build does the same
//! for Rust handlers. They are loaded here and never unloaded (threads of an
//! emulated block may outlive any handle).
//!
//! The emulation keeps a block's shared state in the library's statics, so
//! one loaded copy runs one block at a time. A bridge therefore *leases* a
//! copy for its block ([`Lease`]) and gives it back when the block returns;
//! a bridge that finds every copy busy (another bridge's block runs, or
//! hung for good: a handler that never returns keeps its block, and its
//! copy, for the rest of the process) loads a private copy of the file,
//! with statics of its own. So a hung block costs the threads it runs on,
//! never the next bridge's launch.
//!
//! [`BridgeBuilder::emulate_block`]: crate::BridgeBuilder::emulate_block

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::fallback::ffi::RawHandlerFn;
use crate::sync::lock;

/// `name__rb_emulate(ctl, h2k, k2h, args, nthreads)`, which
/// `RB_KERNEL_ENTRY` defines in the emulation build: serves region 0's rings
/// on a block of `nthreads` emulated threads until terminate or failure;
/// returns thread 0's final status, or -1 for bad arguments.
pub(crate) type KernelEntry = unsafe extern "C" fn(
    ctl: *mut c_void,
    h2k: *mut c_void,
    k2h: *mut c_void,
    args: *const c_void,
    nthreads: u32,
) -> i32;

/// `rb_emulate_callback(ctl, h2k, k2h, fn, fn_ctx, nthreads)`
/// (`kernels/host/emulate_callback.cpp`): the same with a Rust handler.
pub(crate) type CallbackEntry = unsafe extern "C" fn(
    ctl: *mut c_void,
    h2k: *mut c_void,
    k2h: *mut c_void,
    handler: RawHandlerFn,
    fn_ctx: *mut c_void,
    nthreads: u32,
) -> i32;

/// One loaded copy of an emulation library; leaked, so its code stays
/// mapped whatever threads still run in it.
type Copy = &'static libloading::Library;

/// The copies no block runs in, by library path.
static FREE: Mutex<Option<HashMap<String, Vec<Copy>>>> = Mutex::new(None);

/// Copies made so far in this process (names the next private copy).
static COPIES: AtomicUsize = AtomicUsize::new(0);

/// A copy of one emulation library, lent to one block: given back to the
/// free list when dropped, which the serve thread does once its block has
/// returned (never, for a block that hangs).
pub(crate) struct Lease {
    path: String,
    copy: Copy,
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&FREE)
            .get_or_insert_with(HashMap::new)
            .entry(std::mem::take(&mut self.path))
            .or_default()
            .push(self.copy);
    }
}

/// A copy of the library at `path` that no block runs in: a free one, else
/// the library itself the first time, else a private copy of its file.
fn lease(path: &str) -> Result<Lease> {
    let mut free = lock(&FREE);
    let free = free.get_or_insert_with(HashMap::new);
    if let Some(copy) = free.get_mut(path).and_then(Vec::pop) {
        return Ok(Lease {
            path: path.to_owned(),
            copy,
        });
    }
    let first = !free.contains_key(path);
    free.entry(path.to_owned()).or_default();
    let copy = if first {
        load(path)?
    } else {
        load_private_copy(path)?
    };
    Ok(Lease {
        path: path.to_owned(),
        copy,
    })
}

fn load(path: &str) -> Result<Copy> {
    // SAFETY: the library is ringbridge-build's emulation build of a kernel
    // source: loading it runs only its C++ static initialisers (none that
    // touch anything outside it), and it is never unloaded.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot load the block emulation library {path}: {e} (it is built with the \
             crate; a binary moved to another machine cannot emulate a block)"
        ))
    })?;
    Ok(Box::leak(Box::new(lib)))
}

/// Loads the file at `path` once more under a name of its own (the dynamic
/// loader hands out one instance per file name), then removes the name:
/// the mapping stays.
fn load_private_copy(path: &str) -> Result<Copy> {
    let n = COPIES.fetch_add(1, Ordering::Relaxed);
    let file = std::path::Path::new(path)
        .file_name()
        .map_or_else(|| "emulation.so".into(), |f| f.to_string_lossy());
    let copy = std::env::temp_dir().join(format!(
        "ringbridge-emulation-{}-{n}-{file}",
        std::process::id()
    ));
    std::fs::copy(path, &copy).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot copy the block emulation library {path} to {} for a second block \
             (one copy runs one block at a time): {e}",
            copy.display()
        ))
    })?;
    let loaded = load(&copy.to_string_lossy());
    let _ = std::fs::remove_file(&copy);
    loaded
}

/// The emulation entry of kernel `entry` in a copy of the library at
/// `path`, with the lease that keeps the copy to this block.
pub(crate) fn kernel_entry(path: &str, entry: &str) -> Result<(KernelEntry, Lease)> {
    let lease = lease(path)?;
    let name = format!("{entry}__rb_emulate");
    // SAFETY: `name__rb_emulate` is defined by RB_KERNEL_ENTRY in the
    // emulation build with exactly the `KernelEntry` signature; the copy
    // is never unloaded, so the pointer stays valid.
    let f = unsafe { lease.copy.get::<KernelEntry>(name.as_bytes()) }
        .map_err(|e| Error::InvalidArgument(format!("{path} has no entry {name}: {e}")))?;
    Ok((*f, lease))
}

/// The emulation entry for Rust handlers, in a copy of its library, with
/// the lease that keeps the copy to this block.
pub(crate) fn callback_entry() -> Result<(CallbackEntry, Lease)> {
    let path = crate::kernels::CALLBACK_EMULATION.ok_or_else(|| {
        Error::InvalidArgument(
            "the block emulation of Rust handlers was not built (see the build's warnings)".into(),
        )
    })?;
    let lease = lease(path)?;
    // SAFETY: rb_emulate_callback (kernels/host/emulate_callback.cpp) has
    // exactly the `CallbackEntry` signature; the copy is never unloaded.
    let f = unsafe { lease.copy.get::<CallbackEntry>(b"rb_emulate_callback") }.map_err(|e| {
        Error::InvalidArgument(format!("{path} has no entry rb_emulate_callback: {e}"))
    })?;
    Ok((*f, lease))
}
