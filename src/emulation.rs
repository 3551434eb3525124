//! The block emulation's libraries, loaded on demand: a kernel's handler (or
//! a Rust handler) run by a block of POSIX threads that emulates a CUDA
//! block, so a missing barrier or a race between the requests of one batch
//! shows up without a GPU ([`BridgeBuilder::emulate_block`]).
//!
//! ringbridge-build compiles each kernel source a third time with
//! `RB_EMULATE_BLOCK` into `lib<stem>_emulation.so` (see
//! `kernels/host/block_emulation.cpp`); ringbridge's own build does the same
//! for Rust handlers. They are loaded here, once per process, and never
//! unloaded (threads of an emulated block may outlive any handle).
//!
//! [`BridgeBuilder::emulate_block`]: crate::BridgeBuilder::emulate_block

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

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

/// The loaded libraries, by path; leaked, so their code stays mapped.
static LOADED: Mutex<Option<HashMap<&'static str, &'static libloading::Library>>> =
    Mutex::new(None);

fn library(path: &'static str) -> Result<&'static libloading::Library> {
    let mut loaded = lock(&LOADED);
    let map = loaded.get_or_insert_with(HashMap::new);
    if let Some(lib) = map.get(path) {
        return Ok(lib);
    }
    // SAFETY: the library is ringbridge-build's emulation build of a kernel
    // source: loading it runs only its C++ static initialisers (none that
    // touch anything outside it), and it is never unloaded.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot load the block emulation library {path}: {e} (it is built with the \
             crate; a binary moved to another machine cannot emulate a block)"
        ))
    })?;
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    map.insert(path, lib);
    Ok(lib)
}

/// The emulation entry of kernel `entry` in the library at `path`.
pub(crate) fn kernel_entry(path: &'static str, entry: &str) -> Result<KernelEntry> {
    let lib = library(path)?;
    let name = format!("{entry}__rb_emulate");
    // SAFETY: `name__rb_emulate` is defined by RB_KERNEL_ENTRY in the
    // emulation build with exactly the `KernelEntry` signature; the library
    // is never unloaded, so the pointer stays valid.
    let f = unsafe { lib.get::<KernelEntry>(name.as_bytes()) }
        .map_err(|e| Error::InvalidArgument(format!("{path} has no entry {name}: {e}")))?;
    Ok(*f)
}

/// The emulation entry for Rust handlers.
pub(crate) fn callback_entry() -> Result<CallbackEntry> {
    let path = crate::kernels::CALLBACK_EMULATION.ok_or_else(|| {
        Error::InvalidArgument(
            "the block emulation of Rust handlers was not built (see the build's warnings)".into(),
        )
    })?;
    let lib = library(path)?;
    // SAFETY: rb_emulate_callback (kernels/host/emulate_callback.cpp) has
    // exactly the `CallbackEntry` signature; the library is never unloaded.
    let f = unsafe { lib.get::<CallbackEntry>(b"rb_emulate_callback") }.map_err(|e| {
        Error::InvalidArgument(format!("{path} has no entry rb_emulate_callback: {e}"))
    })?;
    Ok(*f)
}
