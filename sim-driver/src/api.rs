//! The driver entry points, by the names cudarc looks up, with the return
//! codes of NVIDIA's CUDA Driver API reference. Every one that takes a
//! context checks that one is current and returns its sticky error after a
//! fault; every one the CUDA C++ Programming Guide says may wait for running
//! work checks the implicit-synchronization rule first (see the crate docs
//! for the list and for what the reference leaves open).
//!
//! # Safety
//! Each function has the contract of the driver function of its name: the
//! pointers it is given are valid for what that function reads or writes.

#![allow(clippy::missing_safety_doc, clippy::too_many_arguments, non_snake_case)]

use std::alloc::Layout;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::abi::*;
use crate::config::{Faults, MAX_BLOCK_THREADS, THREADS_PER_SM};
use crate::exec;
use crate::image;
use crate::world::*;

/// Turns a `Result` into the code the caller gets.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
}

/// Writes `v` through the out-parameter `p`, or `INVALID_VALUE` for null.
macro_rules! out {
    ($p:expr, $v:expr) => {{
        if $p.is_null() {
            return INVALID_VALUE;
        }
        // SAFETY: non-null, and valid for a write by the caller's contract.
        unsafe { $p.write($v) };
    }};
}

/// A device ordinal, checked.
fn device_of(g: &World, dev: CuDevice) -> Result<usize, CuResult> {
    if !g.initialized {
        return Err(NOT_INITIALIZED);
    }
    usize::try_from(dev)
        .ok()
        .filter(|&d| d < g.devices.len())
        .ok_or(INVALID_DEVICE)
}

// ---------------------------------------------------------------- init, errors

#[unsafe(no_mangle)]
pub extern "C" fn cuInit(flags: c_uint) -> CuResult {
    let mut g = world();
    if flags != 0 {
        return INVALID_VALUE;
    }
    if !g.machine.enabled {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            eprintln!(
                "ringbridge-sim: the simulated CUDA driver was loaded but RINGBRIDGE_SIM_DRIVER=1 \
                 is not set: refusing (CUDA_ERROR_STUB_LIBRARY)"
            );
        });
        return STUB_LIBRARY;
    }
    if g.devices.is_empty() {
        return NO_DEVICE;
    }
    g.initialized = true;
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CuResult {
    // The API version this simulator models (cudarc's `cuda-12080`).
    out!(version, 12080);
    SUCCESS
}

/// Writes `text(code)` through `s`: `cuGetErrorName` and
/// `cuGetErrorString` (null and `INVALID_VALUE` for an unknown code).
fn error_text(
    code: CuResult,
    s: *mut *const c_char,
    text: fn(CuResult) -> Option<&'static std::ffi::CStr>,
) -> CuResult {
    let found = text(code);
    out!(s, found.map_or(std::ptr::null(), |t| t.as_ptr()));
    if found.is_some() {
        SUCCESS
    } else {
        INVALID_VALUE
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorName(code: CuResult, s: *mut *const c_char) -> CuResult {
    error_text(code, s, error_name)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorString(code: CuResult, s: *mut *const c_char) -> CuResult {
    error_text(code, s, error_string)
}

// ---------------------------------------------------------------- devices

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CuResult {
    let g = world();
    if !g.initialized {
        return NOT_INITIALIZED;
    }
    out!(count, g.devices.len() as c_int);
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGet(device: *mut CuDevice, ordinal: c_int) -> CuResult {
    let g = world();
    let d = tri!(device_of(&g, ordinal));
    out!(device, d as CuDevice);
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CuDevice) -> CuResult {
    let g = world();
    let d = tri!(device_of(&g, dev));
    if name.is_null() || len <= 0 {
        return INVALID_VALUE;
    }
    let text = format!("ringbridge simulated GPU {d}");
    let n = text.len().min(len as usize - 1);
    // SAFETY: `name` has room for `len` bytes (the caller's contract).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), name.cast::<u8>(), n);
        name.add(n).write(0);
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CuDevice) -> CuResult {
    let g = world();
    tri!(device_of(&g, dev));
    out!(bytes, g.machine.device_bytes);
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    value: *mut c_int,
    attrib: c_uint,
    dev: CuDevice,
) -> CuResult {
    let g = world();
    let d = tri!(device_of(&g, dev));
    let m = &g.machine;
    let v = match attrib {
        attr::MAX_THREADS_PER_BLOCK | attr::MAX_BLOCK_DIM_X | attr::MAX_BLOCK_DIM_Y => 1024,
        attr::MAX_BLOCK_DIM_Z => 64,
        attr::MAX_GRID_DIM_X => i32::MAX,
        attr::MAX_GRID_DIM_Y | attr::MAX_GRID_DIM_Z => 65535,
        attr::MAX_SHARED_MEMORY_PER_BLOCK => 48 * 1024,
        attr::WARP_SIZE => 32,
        attr::MULTIPROCESSOR_COUNT => m.sms as c_int,
        attr::INTEGRATED => 0,
        attr::CAN_MAP_HOST_MEMORY | attr::CONCURRENT_KERNELS | attr::UNIFIED_ADDRESSING => 1,
        attr::PCI_BUS_ID => d as c_int + 1,
        attr::MAX_THREADS_PER_MULTIPROCESSOR => THREADS_PER_SM as c_int,
        attr::ASYNC_ENGINE_COUNT => 2,
        attr::COMPUTE_CAPABILITY_MAJOR => 9,
        attr::COMPUTE_CAPABILITY_MINOR => 0,
        attr::MAX_BLOCKS_PER_MULTIPROCESSOR => m.blocks_per_sm as c_int,
        // No stream-ordered allocator: cudarc then never uses one.
        attr::MEMORY_POOLS_SUPPORTED => 0,
        _ => return INVALID_VALUE,
    };
    out!(value, v);
    SUCCESS
}

// ---------------------------------------------------------------- contexts

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(ctx: *mut Handle, dev: CuDevice) -> CuResult {
    let mut g = world();
    let d = tri!(device_of(&g, dev));
    if ctx.is_null() {
        return INVALID_VALUE;
    }
    let id = match g.devices[d].primary {
        Some(id) => id,
        None => {
            let id = g.new_id();
            g.contexts.insert(
                id,
                Context {
                    device: d,
                    sticky: 0,
                },
            );
            g.devices[d].primary = Some(id);
            id
        }
    };
    g.devices[d].primary_refs += 1;
    out!(ctx, handle(TAG_CONTEXT, id));
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CuDevice) -> CuResult {
    let mut g = world();
    let d = tri!(device_of(&g, dev));
    let Some(id) = g.devices[d].primary else {
        return INVALID_CONTEXT;
    };
    if g.devices[d].primary_refs == 1 {
        // Destroying a context waits for its work (cuCtxDestroy).
        tri!(g.check_idle(
            "cuDevicePrimaryCtxRelease_v2 (the last reference: the context is destroyed)",
            Scope::Device(d)
        ));
        g.devices[d].primary = None;
        g.devices[d].primary_refs = 0;
        g.destroy_context(id);
    } else {
        g.devices[d].primary_refs -= 1;
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCurrent(ctx: *mut Handle) -> CuResult {
    let g = world();
    if !g.initialized {
        return NOT_INITIALIZED;
    }
    let id = CURRENT.with(std::cell::Cell::get);
    let h = if g.contexts.contains_key(&id) {
        handle(TAG_CONTEXT, id)
    } else {
        std::ptr::null_mut()
    };
    out!(ctx, h);
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSetCurrent(ctx: Handle) -> CuResult {
    let g = world();
    if !g.initialized {
        return NOT_INITIALIZED;
    }
    if ctx.is_null() {
        CURRENT.with(|c| c.set(0));
        return SUCCESS;
    }
    let Some(id) = id_of(ctx, TAG_CONTEXT).filter(|id| g.contexts.contains_key(id)) else {
        return INVALID_CONTEXT;
    };
    CURRENT.with(|c| c.set(id));
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuCtxSynchronize() -> CuResult {
    let mut g = world();
    let (_, d) = tri!(g.current());
    tri!(g.check_idle("cuCtxSynchronize", Scope::Device(d)));
    SUCCESS
}

// ---------------------------------------------------------------- memory

fn fail_alloc(g: &mut World) -> bool {
    Faults::hit(&mut g.faults.fail_alloc)
}

/// `bytes` of memory aligned to `align`, filled with a pattern: the driver
/// promises nothing about new memory's contents.
fn allocate(bytes: usize, align: usize) -> Option<(*mut u8, Layout)> {
    let layout = Layout::from_size_align(bytes, align).ok()?;
    // SAFETY: `bytes` is non-zero (checked by every caller).
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is `bytes` writable bytes just allocated.
    unsafe { std::ptr::write_bytes(p, 0xA5, bytes) };
    Some((p, layout))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostAlloc(
    pp: *mut *mut c_void,
    bytes: usize,
    flags: c_uint,
) -> CuResult {
    let mut g = world();
    let (ctx, _) = tri!(g.current());
    if pp.is_null()
        || bytes == 0
        || flags & !(MEMHOSTALLOC_PORTABLE | MEMHOSTALLOC_DEVICEMAP | MEMHOSTALLOC_WRITECOMBINED)
            != 0
    {
        return INVALID_VALUE;
    }
    // Pinned memory is mapped into every context: assumed to wait for all.
    tri!(g.check_idle("cuMemHostAlloc", Scope::AllDevices));
    let used: usize = g.host_allocs.values().map(|a| a.len).sum();
    if fail_alloc(&mut g) || used.saturating_add(bytes) > g.machine.pinned_bytes {
        return OUT_OF_MEMORY;
    }
    let Some((p, layout)) = allocate(bytes, 4096) else {
        return OUT_OF_MEMORY;
    };
    g.host_allocs.insert(
        p as usize,
        HostAlloc {
            len: bytes,
            layout,
            ctx,
            flags,
        },
    );
    out!(pp, p.cast());
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFreeHost(p: *mut c_void) -> CuResult {
    let mut g = world();
    tri!(g.current());
    if !g.host_allocs.contains_key(&(p as usize)) {
        return INVALID_VALUE;
    }
    tri!(g.check_idle("cuMemFreeHost", Scope::AllDevices));
    let a = g.host_allocs.remove(&(p as usize)).expect("checked above");
    // SAFETY: allocated by `allocate` with this layout, freed once.
    unsafe { std::alloc::dealloc(p.cast(), a.layout) };
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostGetDevicePointer_v2(
    dptr: *mut CuDevicePtr,
    p: *mut c_void,
    flags: c_uint,
) -> CuResult {
    let g = world();
    tri!(g.current());
    if flags != 0 {
        return INVALID_VALUE;
    }
    let addr = p as usize;
    let mapped = g
        .host_allocs
        .range(..=addr)
        .next_back()
        .is_some_and(|(&s, a)| addr < s + a.len && a.flags & MEMHOSTALLOC_DEVICEMAP != 0);
    if !mapped {
        return INVALID_VALUE;
    }
    // Unified addressing: a mapped allocation has the same address on both
    // sides (the kernel's host twin dereferences it as it is).
    out!(dptr, addr as CuDevicePtr);
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CuDevicePtr, bytes: usize) -> CuResult {
    let mut g = world();
    let (ctx, d) = tri!(g.current());
    if dptr.is_null() || bytes == 0 {
        return INVALID_VALUE;
    }
    tri!(g.check_idle("cuMemAlloc_v2", Scope::Device(d)));
    let used = g.devices[d].device_bytes;
    if fail_alloc(&mut g) || used.saturating_add(bytes) > g.machine.device_bytes {
        return OUT_OF_MEMORY;
    }
    let Some((p, layout)) = allocate(bytes, 256) else {
        return OUT_OF_MEMORY;
    };
    g.devices[d].device_bytes += bytes;
    g.device_allocs.insert(
        p as usize,
        DeviceAlloc {
            len: bytes,
            layout,
            ctx,
            device: d,
        },
    );
    out!(dptr, p as CuDevicePtr);
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemFree_v2(dptr: CuDevicePtr) -> CuResult {
    let mut g = world();
    let (_, d) = tri!(g.current());
    let Some(a) = g.device_allocs.get(&(dptr as usize)) else {
        return INVALID_VALUE;
    };
    let device = a.device;
    tri!(g.check_idle("cuMemFree_v2", Scope::Device(d)));
    let a = g
        .device_allocs
        .remove(&(dptr as usize))
        .expect("checked above");
    g.devices[device].device_bytes -= a.len;
    // SAFETY: allocated by `allocate` with this layout, freed once.
    unsafe { std::alloc::dealloc(dptr as usize as *mut u8, a.layout) };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemsetD8_v2(dptr: CuDevicePtr, value: u8, n: usize) -> CuResult {
    let mut g = world();
    let (_, d) = tri!(g.current());
    tri!(g.device_range(dptr as usize, n));
    tri!(g.check_idle("cuMemsetD8_v2", Scope::Device(d)));
    // SAFETY: `[dptr, dptr + n)` lies in one allocation of ours.
    unsafe { std::ptr::write_bytes(dptr as usize as *mut u8, value, n) };
    SUCCESS
}

/// A synchronous copy: on the legacy default stream, from or to pageable
/// memory. Listed by this project among the calls that may wait
/// (docs/many-bridges.md): checked as such.
fn copy_sync(call: &str, dst: usize, src: usize, n: usize, device_side: usize) -> CuResult {
    let mut g = world();
    let (_, d) = tri!(g.current());
    if n == 0 {
        return SUCCESS;
    }
    tri!(g.device_range(device_side, n));
    tri!(g.check_idle(call, Scope::Device(d)));
    // SAFETY: the device side lies in one allocation of ours; the host side
    // is the caller's, valid for `n` bytes by contract.
    unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyHtoD_v2(dst: CuDevicePtr, src: *const c_void, n: usize) -> CuResult {
    copy_sync(
        "cuMemcpyHtoD_v2",
        dst as usize,
        src as usize,
        n,
        dst as usize,
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CuDevicePtr, n: usize) -> CuResult {
    copy_sync(
        "cuMemcpyDtoH_v2",
        dst as usize,
        src as usize,
        n,
        src as usize,
    )
}

/// An asynchronous copy on `stream`: done at once when the stream is idle,
/// else queued behind its work. From or to pageable memory the reference
/// says the call first waits for the stream's earlier work: checked as a
/// wait when that work is a kernel.
fn copy_async(
    call: &str,
    dst: usize,
    src: usize,
    n: usize,
    device_side: usize,
    host_side: usize,
    stream: Handle,
) -> CuResult {
    let mut g = world();
    let (ctx, _) = tri!(g.current());
    let id = tri!(stream_id(&g, stream, ctx));
    if n == 0 {
        return SUCCESS;
    }
    tri!(g.device_range(device_side, n));
    let idle = g.streams[&id].ops.is_empty();
    if idle {
        // SAFETY: as in `copy_sync`.
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) };
        return SUCCESS;
    }
    if !g.pinned(host_side, n) {
        let (g2, waited) = exec::drain(g, id, Duration::ZERO);
        g = g2;
        if let Err(kernel) = waited {
            return g.violation(format!(
                "{call} from or to pageable memory on a stream where {kernel} has not \
                 finished: the call waits for the stream's earlier work"
            ));
        }
        // SAFETY: as in `copy_sync`.
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) };
        return SUCCESS;
    }
    exec::enqueue(&mut g, id, Op::Copy(Copy { dst, src, len: n }));
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CuDevicePtr,
    src: *const c_void,
    n: usize,
    stream: Handle,
) -> CuResult {
    copy_async(
        "cuMemcpyHtoDAsync_v2",
        dst as usize,
        src as usize,
        n,
        dst as usize,
        src as usize,
        stream,
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CuDevicePtr,
    n: usize,
    stream: Handle,
) -> CuResult {
    copy_async(
        "cuMemcpyDtoHAsync_v2",
        dst as usize,
        src as usize,
        n,
        src as usize,
        dst as usize,
        stream,
    )
}

// ---------------------------------------------------------------- modules

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut Handle, data: *const c_void) -> CuResult {
    let mut g = world();
    let (ctx, d) = tri!(g.current());
    if module.is_null() || data.is_null() {
        return INVALID_VALUE;
    }
    // Loading may allocate device memory.
    tri!(g.check_idle("cuModuleLoadData", Scope::Device(d)));
    if Faults::hit(&mut g.faults.fail_module) {
        return NO_BINARY_FOR_GPU;
    }
    // SAFETY: `data` is a complete image (the caller's contract).
    let img = tri!(unsafe { image::read(data.cast()) });
    let digest = image::digest(&img.bytes);
    let twin = g.twin(digest);
    let ptx_entries = match img.kind {
        image::Kind::Ptx => image::ptx_entries(&img.bytes),
        _ => Vec::new(),
    };
    let id = g.new_id();
    g.modules.insert(
        id,
        Module {
            ctx,
            kind: img.kind,
            digest,
            twin,
            ptx_entries,
        },
    );
    out!(module, handle(TAG_MODULE, id));
    SUCCESS
}

/// The id of `module`, a module of context `ctx`.
fn module_id(g: &World, module: Handle, ctx: u64) -> Result<u64, CuResult> {
    id_of(module, TAG_MODULE)
        .filter(|m| g.modules.get(m).is_some_and(|m| m.ctx == ctx))
        .ok_or(INVALID_HANDLE)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleGetFunction(
    f: *mut Handle,
    module: Handle,
    name: *const c_char,
) -> CuResult {
    let mut g = world();
    let (ctx, d) = tri!(g.current());
    if f.is_null() || name.is_null() {
        return INVALID_VALUE;
    }
    let mid = tri!(module_id(&g, module, ctx));
    // With lazy loading the entry's code is loaded here.
    tri!(g.check_idle("cuModuleGetFunction", Scope::Device(d)));
    // SAFETY: a NUL-terminated name (the caller's contract).
    let name = unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    let m = &g.modules[&mid];
    let entry = m.twin.as_ref().and_then(|t| t.entry(&name));
    if entry.is_none() && !m.ptx_entries.contains(&name) {
        if m.twin.is_none() && m.kind != image::Kind::Ptx {
            eprintln!(
                "ringbridge-sim: image {:016x} has no host twin in any .rbsim index, so its \
                 entries are unknown: `{name}` reported as not found",
                m.digest
            );
        }
        return NOT_FOUND;
    }
    let id = g.new_id();
    g.functions.insert(
        id,
        Function {
            module: mid,
            name,
            entry,
        },
    );
    out!(f, handle(TAG_FUNCTION, id));
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuModuleUnload(module: Handle) -> CuResult {
    let mut g = world();
    let (ctx, d) = tri!(g.current());
    let mid = tri!(module_id(&g, module, ctx));
    if let Some((id, l)) = g
        .launches
        .iter()
        .find(|(_, l)| l.module == mid && l.active())
    {
        let what = format!(
            "cuModuleUnload of the module of {}: undefined while it runs",
            l.describe(*id)
        );
        return g.violation(what);
    }
    tri!(g.check_idle("cuModuleUnload", Scope::Device(d)));
    g.remove_module(mid);
    SUCCESS
}

fn function(g: &World, f: Handle) -> Result<(u64, &Function), CuResult> {
    let id = id_of(f, TAG_FUNCTION).ok_or(INVALID_HANDLE)?;
    g.functions.get(&id).map(|x| (id, x)).ok_or(INVALID_HANDLE)
}

fn max_threads(f: &Function) -> u32 {
    f.entry
        .as_ref()
        .map_or(MAX_BLOCK_THREADS, |e| e.max_threads.min(MAX_BLOCK_THREADS))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetAttribute(
    value: *mut c_int,
    attrib: c_uint,
    f: Handle,
) -> CuResult {
    let g = world();
    tri!(g.current());
    let (_, func) = tri!(function(&g, f));
    let v = match attrib {
        func_attr::MAX_THREADS_PER_BLOCK => max_threads(func) as c_int,
        func_attr::SHARED_SIZE_BYTES
        | func_attr::CONST_SIZE_BYTES
        | func_attr::LOCAL_SIZE_BYTES => 0,
        func_attr::NUM_REGS => 32,
        _ => return INVALID_VALUE,
    };
    out!(value, v);
    SUCCESS
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessor(
    blocks: *mut c_int,
    f: Handle,
    block_size: c_int,
    dynamic_smem: usize,
) -> CuResult {
    let g = world();
    tri!(g.current());
    let (_, func) = tri!(function(&g, f));
    if block_size <= 0 || dynamic_smem > 48 * 1024 {
        return INVALID_VALUE;
    }
    let bs = block_size as u32;
    let n = if bs > max_threads(func) {
        0
    } else {
        (THREADS_PER_SM / bs.div_ceil(32) / 32).min(g.machine.blocks_per_sm)
    };
    out!(blocks, n as c_int);
    SUCCESS
}

// ---------------------------------------------------------------- streams

fn stream_id(g: &World, stream: Handle, ctx: u64) -> Result<u64, CuResult> {
    let id = id_of(stream, TAG_STREAM).ok_or(INVALID_HANDLE)?;
    match g.streams.get(&id) {
        Some(s) if s.ctx == ctx && !s.destroyed => Ok(id),
        Some(s) if s.ctx != ctx => Err(INVALID_CONTEXT),
        _ => Err(INVALID_HANDLE),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreate(stream: *mut Handle, flags: c_uint) -> CuResult {
    let mut g = world();
    let (ctx, d) = tri!(g.current());
    if stream.is_null() || flags & !STREAM_NON_BLOCKING != 0 {
        return INVALID_VALUE;
    }
    // Not documented to wait; the project treats it as if it might, and the
    // simulator holds it to that (the stricter reading).
    tri!(g.check_idle("cuStreamCreate", Scope::Device(d)));
    let id = g.new_id();
    g.streams.insert(
        id,
        Stream {
            ctx,
            ops: Default::default(),
            worker: false,
            destroyed: false,
        },
    );
    out!(stream, handle(TAG_STREAM, id));
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamDestroy_v2(stream: Handle) -> CuResult {
    let mut g = world();
    let (ctx, _) = tri!(g.current());
    let id = tri!(stream_id(&g, stream, ctx));
    // Returns at once; the stream's work still runs (Driver API reference).
    let s = g.streams.get_mut(&id).expect("checked");
    if s.worker {
        s.destroyed = true;
    } else {
        g.streams.remove(&id);
    }
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamQuery(stream: Handle) -> CuResult {
    let g = world();
    let (ctx, _) = tri!(g.current());
    let id = tri!(stream_id(&g, stream, ctx));
    if g.streams[&id].ops.is_empty() {
        SUCCESS
    } else {
        NOT_READY
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn cuStreamSynchronize(stream: Handle) -> CuResult {
    let g = world();
    let (ctx, _) = tri!(g.current());
    let id = tri!(stream_id(&g, stream, ctx));
    let horizon = g.machine.wait_horizon;
    let (mut g, waited) = exec::drain(g, id, horizon);
    if let Err(kernel) = waited {
        return g.violation(format!(
            "cuStreamSynchronize waited {:?} for {kernel}: a persistent kernel would keep it \
             waiting forever",
            horizon
        ));
    }
    match g.contexts.get(&ctx) {
        Some(c) if c.sticky != 0 => c.sticky,
        _ => SUCCESS,
    }
}

// ---------------------------------------------------------------- launch

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernel(
    f: Handle,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    shared: c_uint,
    stream: Handle,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CuResult {
    let mut g = world();
    let (ctx, d) = tri!(g.current());
    let (_, func) = tri!(function(&g, f));
    let module = func.module;
    if g.modules.get(&module).is_none_or(|m| m.ctx != ctx) {
        return INVALID_CONTEXT;
    }
    let threads = u64::from(bx) * u64::from(by) * u64::from(bz);
    let blocks = u64::from(gx) * u64::from(gy) * u64::from(gz);
    if blocks == 0
        || threads == 0
        || gx > i32::MAX as u32
        || gy > 65535
        || gz > 65535
        || bx > 1024
        || by > 1024
        || bz > 64
        || threads > u64::from(max_threads(func))
        || shared > 48 * 1024
        || blocks > u64::from(u32::MAX)
    {
        return INVALID_VALUE;
    }
    if !extra.is_null() {
        // The packed-buffer form is not modelled.
        eprintln!("ringbridge-sim: cuLaunchKernel's `extra` parameters are not simulated");
        return NOT_SUPPORTED;
    }
    let Some(entry) = func.entry.clone() else {
        eprintln!(
            "ringbridge-sim: `{}` has no host twin (an image not built by ringbridge-build, \
             or hand-written PTX): the simulator cannot run it",
            func.name
        );
        return NOT_SUPPORTED;
    };
    let sid = if stream.is_null() {
        // The legacy default stream waits for all blocking work: not used
        // by ringbridge, and not modelled.
        eprintln!("ringbridge-sim: launches on the default stream are not simulated");
        return NOT_SUPPORTED;
    } else {
        tri!(stream_id(&g, stream, ctx))
    };
    if !entry.params.is_empty() && params.is_null() {
        return INVALID_VALUE;
    }
    // The parameter space as the driver builds it: each parameter's bytes,
    // read through its pointer, at its offset.
    let mut space = vec![0u8; entry.space()];
    for (i, &(off, size)) in entry.params.iter().enumerate() {
        // SAFETY: `params` holds one pointer per kernel parameter, each to
        // `size` readable bytes (the caller's contract).
        unsafe {
            let p = *params.add(i);
            if p.is_null() {
                return INVALID_VALUE;
            }
            std::ptr::copy_nonoverlapping(
                p.cast::<u8>(),
                space.as_mut_ptr().add(off as usize),
                size as usize,
            );
        }
    }
    if Faults::hit(&mut g.faults.fail_launch) {
        return LAUNCH_OUT_OF_RESOURCES;
    }
    let twin = Arc::clone(
        g.modules[&module]
            .twin
            .as_ref()
            .expect("an entry comes from a twin"),
    );
    let id = g.new_id();
    g.launches.insert(
        id,
        Launch {
            ctx,
            device: d,
            stream: sid,
            module,
            entry,
            twin,
            grid: blocks as u32,
            threads: threads as u32,
            params: Arc::new(space),
            blocks_left: blocks as u32,
            resident: Default::default(),
            fault: 0,
            done: false,
            launched: Instant::now(),
        },
    );
    exec::enqueue(&mut g, sid, Op::Kernel(id));
    SUCCESS
}
