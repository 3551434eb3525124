//! Which driver calls wait for a running persistent kernel of the same
//! process: the measurement behind `ringbridge::cuda::Reservation` (see the
//! README's "Many bridges and GPUs" and docs/many-bridges.md).
//!
//! For each candidate call: launch an echo bridge (its kernel spins until
//! stopped), make the call on a helper thread, and wait up to two seconds.
//! A call that has not returned by then waits for the kernel: the bridge is
//! shut down (through its control block, no driver call), which lets the
//! call finish, and the row says "waits". Run on a GPU with
//! `cargo test --release --test sync_probe -- --ignored --nocapture`
//! (scripts/gpu-check.sh does). Without a GPU it prints that it skipped.

mod common;

use std::ffi::c_void;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cudarc::driver::sys::{self, CUresult};
use ringbridge::{Backend, Bridge};

/// How long a call may take before it counts as waiting for the kernel.
const PATIENCE: Duration = Duration::from_secs(2);

/// A driver call to probe; returns the call's result.
type Probe = fn() -> CUresult;

/// `*mut T` of a fresh zeroed driver struct (all-zero is a valid value of
/// every struct used here: null pointers and each enum's 0 variant).
fn zeroed<T: Copy>() -> T {
    // SAFETY: only used for the driver's plain `#[repr(C)]` structs whose
    // fields are integers, raw pointers and enums with a 0 variant.
    unsafe { std::mem::zeroed() }
}

fn pinned_alloc() -> CUresult {
    let mut p: *mut c_void = std::ptr::null_mut();
    let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
    // SAFETY: a live out-pointer; the memory is freed below.
    let r = unsafe { sys::cuMemHostAlloc(&raw mut p, 1 << 20, flags) };
    if r == CUresult::CUDA_SUCCESS {
        // SAFETY: allocated just above, freed once.
        unsafe { sys::cuMemFreeHost(p) };
    }
    r
}

fn host_register() -> CUresult {
    let mut memory = vec![0u8; 1 << 20];
    let p = memory.as_mut_ptr().cast::<c_void>();
    // SAFETY: `memory` outlives the registration, undone below.
    let r =
        unsafe { sys::cuMemHostRegister_v2(p, memory.len(), sys::CU_MEMHOSTREGISTER_DEVICEMAP) };
    if r == CUresult::CUDA_SUCCESS {
        // SAFETY: registered above.
        unsafe { sys::cuMemHostUnregister(p) };
    }
    r
}

fn device_alloc() -> CUresult {
    let mut d = 0;
    // SAFETY: a live out-pointer; freed below.
    let r = unsafe { sys::cuMemAlloc_v2(&raw mut d, 1 << 20) };
    if r == CUresult::CUDA_SUCCESS {
        // SAFETY: allocated just above, freed once.
        unsafe { sys::cuMemFree_v2(d) };
    }
    r
}

fn module_load() -> CUresult {
    let image = ringbridge::kernels::image("echo").map(|i| i.fatbin.to_vec());
    let Ok(mut image) = image else {
        return CUresult::CUDA_ERROR_NOT_FOUND;
    };
    image.extend([0; 8]);
    let mut module = std::ptr::null_mut();
    // SAFETY: a complete image, NUL-padded, alive during the call.
    let r = unsafe { sys::cuModuleLoadData(&raw mut module, image.as_ptr().cast()) };
    if r != CUresult::CUDA_SUCCESS {
        return r;
    }
    let mut f = std::ptr::null_mut();
    let name = std::ffi::CString::new(ringbridge::kernels::ECHO_ENTRY).expect("no NUL");
    // SAFETY: `module` is loaded; the name is NUL-terminated.
    let r = unsafe { sys::cuModuleGetFunction(&raw mut f, module, name.as_ptr()) };
    // SAFETY: loaded above, unloaded once, never launched.
    unsafe { sys::cuModuleUnload(module) };
    r
}

fn stream_create() -> CUresult {
    let mut s = std::ptr::null_mut();
    // SAFETY: a live out-pointer; destroyed below.
    let r = unsafe { sys::cuStreamCreate(&raw mut s, 1) };
    if r == CUresult::CUDA_SUCCESS {
        // SAFETY: created above.
        unsafe { sys::cuStreamDestroy_v2(s) };
    }
    r
}

fn host_pool_alloc() -> CUresult {
    let mut props: sys::CUmemPoolProps = zeroed();
    props.allocType = sys::CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED;
    props.location.type_ = sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_HOST;
    let mut pool = std::ptr::null_mut();
    // SAFETY: `props` is a valid description; destroyed below.
    let r = unsafe { sys::cuMemPoolCreate(&raw mut pool, &raw const props) };
    if r != CUresult::CUDA_SUCCESS {
        return r;
    }
    let mut s = std::ptr::null_mut();
    // SAFETY: as in `stream_create` (measured there on its own).
    unsafe { sys::cuStreamCreate(&raw mut s, 1) };
    let mut d = 0;
    // SAFETY: pool and stream are live; the memory is freed on the stream.
    let mut r = unsafe { sys::cuMemAllocFromPoolAsync(&raw mut d, 1 << 20, pool, s) };
    if r == CUresult::CUDA_SUCCESS {
        // SAFETY: allocated above on `s`.
        unsafe { sys::cuMemFreeAsync(d, s) };
        // SAFETY: `s` is live.
        r = unsafe { sys::cuStreamSynchronize(s) };
    }
    // SAFETY: created above; nothing uses them any more.
    unsafe {
        sys::cuStreamDestroy_v2(s);
        sys::cuMemPoolDestroy(pool);
    }
    r
}

fn vmm_map() -> CUresult {
    let mut prop: sys::CUmemAllocationProp = zeroed();
    prop.type_ = sys::CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type_ = sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE;
    let mut gran = 0;
    // SAFETY: live pointers to valid values.
    let r = unsafe {
        sys::cuMemGetAllocationGranularity(
            &raw mut gran,
            &raw const prop,
            sys::CUmemAllocationGranularity_flags::CU_MEM_ALLOC_GRANULARITY_MINIMUM,
        )
    };
    if r != CUresult::CUDA_SUCCESS {
        return r;
    }
    let mut handle = 0;
    let mut va = 0;
    // SAFETY: each call gets live out-pointers and what the previous one
    // made; everything is undone in reverse order below.
    unsafe {
        let r = sys::cuMemCreate(&raw mut handle, gran, &raw const prop, 0);
        if r != CUresult::CUDA_SUCCESS {
            return r;
        }
        let r = sys::cuMemAddressReserve(&raw mut va, gran, 0, 0, 0);
        if r == CUresult::CUDA_SUCCESS {
            let mut r2 = sys::cuMemMap(va, gran, 0, handle, 0);
            if r2 == CUresult::CUDA_SUCCESS {
                let mut access: sys::CUmemAccessDesc = zeroed();
                access.location = prop.location;
                access.flags = sys::CUmemAccess_flags::CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
                r2 = sys::cuMemSetAccess(va, gran, &raw const access, 1);
                sys::cuMemUnmap(va, gran);
            }
            sys::cuMemAddressFree(va, gran);
            sys::cuMemRelease(handle);
            return r2;
        }
        sys::cuMemRelease(handle);
        r
    }
}

fn memset_sync() -> CUresult {
    let mut d = 0;
    // Allocates too: the row says something of the memset only where
    // `device_alloc`'s row returns.
    // SAFETY: a live out-pointer; freed below.
    let r = unsafe { sys::cuMemAlloc_v2(&raw mut d, 4096) };
    if r != CUresult::CUDA_SUCCESS {
        return r;
    }
    // SAFETY: `d` is 4096 bytes of device memory.
    let r = unsafe { sys::cuMemsetD8_v2(d, 0, 4096) };
    // SAFETY: allocated above.
    unsafe { sys::cuMemFree_v2(d) };
    r
}

/// Runs `probe` while an echo bridge's kernel spins: how long it took, or
/// `None` when it waited past [`PATIENCE`] (then the kernel is stopped so
/// the call can finish).
fn measure(name: &str, probe: Probe) -> String {
    let bridge = match Bridge::builder().backend(Backend::Cuda).launch() {
        Ok(b) => b,
        Err(e) => return format!("{name:28} cannot launch the bridge: {e}"),
    };
    let ctx = cudarc::driver::CudaContext::new(0).expect("context of device 0");
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let worker = std::thread::spawn(move || {
        ctx.bind_to_thread().expect("bind the context");
        let r = probe();
        let _ = tx.send((r, start.elapsed()));
    });
    let row = match rx.recv_timeout(PATIENCE) {
        Ok((r, took)) => format!("{name:28} returns   {:>10.1?}  {r:?}", took),
        Err(_) => {
            bridge.shutdown().expect("stop the kernel");
            let (r, took) = rx
                .recv()
                .expect("the call finishes once the kernel stopped");
            format!(
                "{name:28} WAITS     {:>10.1?}  {r:?} (returned after the kernel stopped)",
                took
            )
        }
    };
    worker.join().expect("probe thread");
    drop(bridge);
    row
}

#[test]
#[ignore = "a GPU measurement: run with --ignored --nocapture"]
fn which_driver_calls_wait_for_a_running_kernel() {
    let Some(_gpu) = common::gpu_or_skip("which_driver_calls_wait_for_a_running_kernel") else {
        return;
    };
    let probes: [(&str, Probe); 8] = [
        ("cuMemHostAlloc+FreeHost", pinned_alloc),
        ("cuMemHostRegister", host_register),
        ("cuMemAlloc+Free", device_alloc),
        ("cuMemsetD8 (sync)", memset_sync),
        ("cuModuleLoadData+GetFunc", module_load),
        ("cuStreamCreate", stream_create),
        ("host pool AllocFromPoolAsync", host_pool_alloc),
        ("cuMemCreate+Map (VMM)", vmm_map),
    ];
    println!("driver calls made while a persistent kernel of this process spins:");
    for (name, probe) in probes {
        println!("{}", measure(name, probe));
    }
}
