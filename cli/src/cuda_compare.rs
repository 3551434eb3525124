//! The alternatives to a bridge that `ringbridge compare` measures on the
//! CUDA backend: the same echo work (reply = request with every byte + 1)
//! done the ways a user would otherwise pick, on the same GPU, each round
//! trip timed on the host and its reply checked.
//!
//! The kernels are in `kernels/compare.cu`, compiled by this crate's
//! `build.rs`; modules, streams, device buffers, graphs and pinned memory
//! are cudarc's (its safe layer), in a context wrapper of their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr,
    DriverError, LaunchConfig, PinnedHostSlice, PushKernelArg, sys,
};
use cudarc::nvrtc::Ptx;
use ringbridge::Error;

/// `COMPARE_FATBIN`: the fatbin of `kernels/compare.cu`, or why nvcc did not
/// compile it.
mod image {
    include!(concat!(env!("OUT_DIR"), "/compare_image.rs"));
}

/// Entry point of the one-shot echo kernel.
const ONESHOT_ENTRY: &str = "ringbridge_cmp_oneshot";
/// Entry point of the persistent "volatile + `__threadfence_system()`" kernel.
const VOLATILE_FENCE_ENTRY: &str = "ringbridge_cmp_volatile_fence";
/// Threads per block of the one-shot kernel.
const ONESHOT_BLOCK: u32 = 128;
/// Control words of the persistent kernel (see `kernels/compare.cu`).
const REQUEST_SEQ: usize = 0;
/// Word the persistent kernel publishes each reply's sequence in.
const REPLY_SEQ: usize = 16;
/// Word holding the payload length, written before the launch.
const LEN: usize = 32;
/// Request sequence that stops the persistent kernel.
const STOP: u64 = u64::MAX;
/// Bytes of control words before the persistent kernel's payloads.
const CONTROL_BYTES: usize = 512;
/// How long a reply of the persistent kernel may take before it is an error.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// One way of running the echo work on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaAlternative {
    /// `cuLaunchKernel` of a one-shot echo kernel over mapped pinned host
    /// memory, then `cuStreamSynchronize`, per message.
    LaunchSync,
    /// Host-to-device copy, launch, device-to-host copy, synchronize.
    CopyLaunchCopy,
    /// A CUDA graph of [`CopyLaunchCopy`](Self::CopyLaunchCopy), captured
    /// once and replayed (`cuGraphLaunch` + synchronize) per message.
    GraphReplay,
    /// A persistent kernel polling a volatile sequence word in mapped memory,
    /// with `__threadfence_system()` before reading and before publishing.
    VolatileFence,
}

impl CudaAlternative {
    /// Every alternative, in the order `compare` runs them.
    pub const ALL: [Self; 4] = [
        Self::LaunchSync,
        Self::CopyLaunchCopy,
        Self::GraphReplay,
        Self::VolatileFence,
    ];

    /// Short name (tables, CSV, JSON).
    pub fn name(self) -> &'static str {
        match self {
            Self::LaunchSync => "launch_sync",
            Self::CopyLaunchCopy => "copy_launch_copy",
            Self::GraphReplay => "graph_replay",
            Self::VolatileFence => "volatile_fence",
        }
    }

    /// One line saying what is measured.
    pub fn description(self) -> &'static str {
        match self {
            Self::LaunchSync => "cuLaunchKernel + synchronize per message (mapped I/O)",
            Self::CopyLaunchCopy => "H2D copy + launch + D2H copy + synchronize",
            Self::GraphReplay => "CUDA graph of copy+launch+copy, replayed + synchronize",
            Self::VolatileFence => "persistent kernel, volatile poll + __threadfence_system()",
        }
    }
}

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// A driver call, allocation or launch failed.
    #[error(transparent)]
    Cuda(#[from] Error),
    /// A reply was not the request with every byte + 1.
    #[error("{alternative}: wrong reply to message {message}: {what}")]
    WrongReply {
        /// The alternative's name.
        alternative: &'static str,
        /// The message's index (warm-up included).
        message: u64,
        /// What differed.
        what: String,
    },
    /// The persistent kernel did not answer in time.
    #[error("{alternative}: no reply to message {message} within {after:?}")]
    NoReply {
        /// The alternative's name.
        alternative: &'static str,
        /// The message's index (warm-up included).
        message: u64,
        /// How long the host waited.
        after: Duration,
    },
}

/// What to measure.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// CUDA device ordinal.
    pub device: usize,
    /// Payload bytes per message (at least 1).
    pub payload: usize,
    /// Untimed round trips first.
    pub warmup: u64,
    /// Timed round trips.
    pub messages: u64,
}

/// Runs `warmup + messages` round trips of `alt` and returns the timed
/// ones' round-trip times in nanoseconds, in order. Each round trip (writing
/// the request, running it, checking every reply byte) is timed with
/// [`Instant`]. `progress` is called with the number of round trips done so
/// far (warm-up included) after each one.
///
/// # Errors
/// [`CompareError::Cuda`] without a driver or GPU ([`Error::CudaUnavailable`]),
/// without compiled kernels, for a zero payload or when a driver call fails;
/// [`CompareError::WrongReply`] / [`CompareError::NoReply`] when a reply is
/// wrong or missing.
pub fn measure(
    alt: CudaAlternative,
    work: &Workload,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u64>, CompareError> {
    if work.payload == 0 {
        return Err(Error::InvalidArgument("the payload must be at least 1 byte".into()).into());
    }
    let ctx = context(work.device)?;
    let image = image::COMPARE_FATBIN.map_err(|why| Error::KernelsNotCompiled(why.to_string()))?;
    match alt {
        CudaAlternative::VolatileFence => volatile_fence(&ctx, image, work, progress),
        _ => one_shot(&ctx, image, alt, work, progress),
    }
}

/// Turns a failed driver call into [`Error::Cuda`], naming the call.
fn cuda_err(call: &'static str) -> impl FnOnce(DriverError) -> Error {
    move |err| Error::Cuda {
        call,
        message: ringbridge::cuda::describe(err),
    }
}

/// A context of device `ordinal` (its primary context, in a cudarc wrapper
/// of this module's own) without event tracking: each alternative runs on
/// one stream and synchronizes it before the host touches what it used, and
/// tracking would make the graph's capture wait on events recorded outside
/// it. [`Error::CudaUnavailable`] without a driver (checked first: cudarc
/// panics when it cannot load one), [`Error::DeviceOutOfRange`] without
/// that device.
fn context(ordinal: usize) -> Result<Arc<CudaContext>, Error> {
    let count = ringbridge::cuda::device_count()?;
    if ordinal >= count {
        return Err(Error::DeviceOutOfRange { ordinal, count });
    }
    let ctx = CudaContext::new(ordinal).map_err(cuda_err("cuDevicePrimaryCtxRetain"))?;
    // SAFETY: this wrapper is new and has made no stream or buffer yet;
    // everything made through it below is used on one stream, which is
    // synchronized before a buffer is read on the host or dropped.
    unsafe { ctx.disable_event_tracking() };
    Ok(ctx)
}

/// Loads the `"compare"` fatbin and looks up `entry` in it.
fn load(ctx: &Arc<CudaContext>, image: &[u8], entry: &str) -> Result<CudaFunction, Error> {
    let bytes = image.to_vec();
    // `cuModuleLoadData` wants the image 8-byte aligned; the allocator hands
    // out at least that for a buffer this size (checked, not assumed).
    if bytes.as_ptr().align_offset(8) != 0 {
        return Err(Error::InvalidImage(
            "the compare image's copy is not 8-byte aligned".into(),
        ));
    }
    let module: Arc<CudaModule> = ctx
        .load_module(Ptx::from_binary(bytes))
        .map_err(cuda_err("cuModuleLoadData"))?;
    module
        .load_function(entry)
        .map_err(cuda_err("cuModuleGetFunction"))
}

/// Pinned host memory mapped into the device's address space
/// (`CU_MEMHOSTALLOC_DEVICEMAP`), zeroed, seen by the host as 64-bit atomic
/// words (the GPU reads and writes it while the host does).
struct Mapped {
    /// The allocation; freed on drop (cudarc's).
    mem: PinnedHostSlice<u64>,
    /// Its first word.
    ptr: *mut u64,
    /// Its address on the device.
    device: u64,
}

impl Mapped {
    /// At least `bytes` bytes (whole words, at least one).
    fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Result<Self, Error> {
        let words = bytes.div_ceil(8).max(1);
        let alloc_err = |e: DriverError| Error::Alloc {
            bytes: 8 * words,
            reason: ringbridge::cuda::describe(e),
        };
        // SAFETY: the memory is zeroed below before anything reads it.
        let mut mem = unsafe {
            ctx.alloc_pinned_with_flags::<u64>(
                words,
                sys::CU_MEMHOSTALLOC_PORTABLE | sys::CU_MEMHOSTALLOC_DEVICEMAP,
            )
        }
        .map_err(alloc_err)?;
        // Never recorded on a stream, so this does not wait.
        let ptr = mem.as_mut_ptr().map_err(cuda_err("cuEventSynchronize"))?;
        // SAFETY: `ptr` is the start of `words` u64s just allocated, which
        // nothing else uses yet.
        unsafe { std::ptr::write_bytes(ptr, 0, words) };
        let mut device: sys::CUdeviceptr = 0;
        // SAFETY: `ptr` was allocated with CU_MEMHOSTALLOC_DEVICEMAP in the
        // current context (cudarc bound it); `device` is a live out-parameter.
        unsafe { sys::cuMemHostGetDevicePointer_v2(&raw mut device, ptr.cast(), 0) }
            .result()
            .map_err(cuda_err("cuMemHostGetDevicePointer_v2"))?;
        Ok(Self { mem, ptr, device })
    }

    /// The memory as words, for the host.
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` points to `mem.len()` initialized (zeroed), 8-byte
        // aligned u64s that live as long as `self`; `AtomicU64` has the
        // layout of `u64`; the host touches them only through these atomics
        // (the device's accesses are outside Rust's model, ordered by the
        // protocol's fences and by stream synchronization).
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<AtomicU64>(), self.mem.len()) }
    }

    /// The first `len` bytes, as the source of an asynchronous copy.
    fn bytes(&self, len: usize) -> &[u8] {
        assert!(len <= 8 * self.mem.len());
        // SAFETY: in bounds (checked); the host does not store to this
        // memory while a copy from it is pending (it writes only between
        // synchronizations), so nothing writes these bytes while the shared
        // view lives.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), len) }
    }

    /// The first `len` bytes, as the target of an asynchronous copy.
    #[allow(clippy::mut_from_ref)]
    fn bytes_mut(&self, len: usize) -> &mut [u8] {
        assert!(len <= 8 * self.mem.len());
        // SAFETY: in bounds (checked); the view is only handed to cudarc to
        // enqueue a copy (which records the address and returns); the host
        // reads the bytes only after synchronizing the stream, through
        // `words`, when this view is gone.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), len) }
    }
}

/// The request of message `i`: a pattern, with `i` in the first 8 bytes.
fn fill(buf: &mut [u8], i: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(13).wrapping_add(5);
    }
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&i.to_le_bytes()[..n]);
}

/// Stores `bytes` into `words` (little-endian packing, as the GPU sees them).
fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (w, chunk) in words.iter().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        // Relaxed: the caller's release store of the sequence word, after
        // these, publishes them.
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

/// Checks that `words` hold `request` with every byte + 1.
fn check_reply(
    alternative: &'static str,
    message: u64,
    words: &[AtomicU64],
    request: &[u8],
) -> Result<(), CompareError> {
    for (k, (w, chunk)) in words.iter().zip(request.chunks(8)).enumerate() {
        // Relaxed: the caller's acquire load of the reply's sequence word,
        // before this, ordered it after the kernel's reply stores.
        let got = w.load(Ordering::Relaxed).to_le_bytes();
        for (j, (g, r)) in got.iter().zip(chunk).enumerate() {
            if *g != r.wrapping_add(1) {
                return Err(CompareError::WrongReply {
                    alternative,
                    message,
                    what: format!(
                        "byte {} is {g:#04x}, expected {:#04x}",
                        8 * k + j,
                        r.wrapping_add(1)
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The one-shot kernel, with a stream of its own.
struct OneShot {
    /// `ringbridge_cmp_oneshot` (keeps its module loaded).
    function: CudaFunction,
    /// A non-blocking stream.
    stream: Arc<CudaStream>,
}

impl OneShot {
    /// Loads `image` and creates the stream.
    fn new(ctx: &Arc<CudaContext>, image: &[u8]) -> Result<Self, Error> {
        let function = load(ctx, image, ONESHOT_ENTRY)?;
        let stream = ctx.new_stream().map_err(cuda_err("cuStreamCreate"))?;
        Ok(Self { function, stream })
    }

    /// Enqueues the kernel on the stream over device addresses `input` and
    /// `output`, `len` bytes.
    ///
    /// # Safety
    /// `input` and `output` are device addresses of at least `len` bytes
    /// that stay allocated until the stream is synchronized.
    unsafe fn launch(&self, input: u64, output: u64, len: u32) -> Result<(), Error> {
        let cfg = LaunchConfig {
            grid_dim: (len.div_ceil(ONESHOT_BLOCK).max(1), 1, 1),
            block_dim: (ONESHOT_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(&self.function);
        launch.arg(&input).arg(&output).arg(&len);
        // SAFETY: the kernel takes (const uint8_t*, uint8_t*, uint32_t),
        // which these (u64, u64, u32) are; the addresses are valid for `len`
        // bytes until the stream is synchronized (the caller's contract).
        unsafe { launch.launch(cfg) }
            .map(|_| ())
            .map_err(cuda_err("cuLaunchKernel"))
    }

    /// Waits for everything on the stream.
    fn sync(&self) -> Result<(), Error> {
        self.stream
            .synchronize()
            .map_err(cuda_err("cuStreamSynchronize"))
    }
}

/// The device address of `buf` (no event tracking, so nothing is recorded).
fn address(buf: &CudaSlice<u8>, stream: &CudaStream) -> u64 {
    let (ptr, _no_event) = buf.device_ptr(stream);
    ptr
}

/// Enqueues H2D copy, kernel, D2H copy on `k`'s stream.
fn enqueue_copy_launch_copy(
    k: &OneShot,
    host_in: &Mapped,
    host_out: &Mapped,
    dev_in: &mut CudaSlice<u8>,
    dev_out: &mut CudaSlice<u8>,
    len: usize,
) -> Result<(), Error> {
    let n = u32::try_from(len).map_err(|_| Error::InvalidArgument("payload too large".into()))?;
    k.stream
        .memcpy_htod(host_in.bytes(len), dev_in)
        .map_err(cuda_err("cuMemcpyHtoDAsync_v2"))?;
    let (din, dout) = (address(dev_in, &k.stream), address(dev_out, &k.stream));
    // SAFETY: both buffers hold `len` bytes and outlive every use of the
    // stream (the caller synchronizes before dropping them).
    unsafe { k.launch(din, dout, n) }?;
    k.stream
        .memcpy_dtoh(dev_out, host_out.bytes_mut(len))
        .map_err(cuda_err("cuMemcpyDtoHAsync_v2"))
}

/// Captures [`enqueue_copy_launch_copy`] into a graph and instantiates it.
fn capture(
    k: &OneShot,
    host_in: &Mapped,
    host_out: &Mapped,
    dev_in: &mut CudaSlice<u8>,
    dev_out: &mut CudaSlice<u8>,
    len: usize,
) -> Result<CudaGraph, Error> {
    k.stream
        .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(cuda_err("cuStreamBeginCapture_v2"))?;
    let enqueued = enqueue_copy_launch_copy(k, host_in, host_out, dev_in, dev_out, len);
    // Also after a failed enqueue, so the stream leaves capture mode.
    let ended = k.stream.end_capture(sys::CUgraphInstantiate_flags(0));
    enqueued?;
    ended
        .map_err(cuda_err("cuStreamEndCapture"))?
        .ok_or_else(|| Error::Cuda {
            call: "cuStreamEndCapture",
            message: "the capture made no graph".into(),
        })
}

/// Alternatives (a), (b) and (c): one kernel launch per message.
fn one_shot(
    ctx: &Arc<CudaContext>,
    image: &[u8],
    alt: CudaAlternative,
    work: &Workload,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u64>, CompareError> {
    let len = work.payload;
    let n = u32::try_from(len).map_err(|_| Error::InvalidArgument("payload too large".into()))?;
    let kernel = OneShot::new(ctx, image)?;
    let host_in = Mapped::new(ctx, len)?;
    let host_out = Mapped::new(ctx, len)?;
    let alloc = |stream: &Arc<CudaStream>| {
        stream.alloc_zeros::<u8>(len).map_err(|e| Error::Alloc {
            bytes: len,
            reason: ringbridge::cuda::describe(e),
        })
    };
    let mut devices = match alt {
        CudaAlternative::LaunchSync => None,
        _ => Some((alloc(&kernel.stream)?, alloc(&kernel.stream)?)),
    };
    kernel.sync()?; // the buffers' allocation and zeroing
    let graph = match (&mut devices, alt) {
        (Some((din, dout)), CudaAlternative::GraphReplay) => {
            Some(capture(&kernel, &host_in, &host_out, din, dout, len)?)
        }
        _ => None,
    };
    let mut request = vec![0u8; len];
    let mut samples = Vec::with_capacity(usize::try_from(work.messages).unwrap_or(0));
    for i in 0..work.warmup + work.messages {
        fill(&mut request, i);
        let t0 = Instant::now();
        store_bytes(host_in.words(), &request);
        match (&graph, &mut devices) {
            (Some(g), _) => g.launch().map_err(cuda_err("cuGraphLaunch"))?,
            (None, Some((din, dout))) => {
                enqueue_copy_launch_copy(&kernel, &host_in, &host_out, din, dout, len)?;
            }
            // SAFETY: both mapped buffers hold at least `len` bytes and live
            // until after the synchronization below.
            (None, None) => unsafe { kernel.launch(host_in.device, host_out.device, n) }?,
        }
        kernel.sync()?;
        check_reply(alt.name(), i, host_out.words(), &request)?;
        let dt = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if i >= work.warmup {
            samples.push(dt);
        }
        progress(i + 1);
    }
    // Drop order: graph, device buffers and host buffers before the module
    // and stream (all work was synchronized above).
    drop(graph);
    drop(devices);
    drop((host_in, host_out));
    Ok(samples)
}

/// The persistent kernel of [`volatile_fence`], running on a stream of its
/// own, and an event recorded after it (its completion).
struct Persistent {
    /// `ringbridge_cmp_volatile_fence`: held only to keep its module loaded.
    _function: CudaFunction,
    /// The kernel's stream: held so it lives as long as the kernel.
    _stream: Arc<CudaStream>,
    /// Complete once the kernel returned.
    done: CudaEvent,
}

impl Persistent {
    /// `Ok(true)` once the kernel returned, `Ok(false)` while it runs,
    /// [`Error::KernelFault`] after a fault. Never blocks.
    fn poll(&self) -> Result<bool, Error> {
        self.done
            .try_is_complete()
            .map_err(|e| Error::KernelFault(ringbridge::cuda::describe(e)))
    }

    /// Polls every 100 µs until the kernel returned (`Ok(true)`) or
    /// `timeout` passed (`Ok(false)`); never blocks in the driver.
    fn wait_finished(&self, timeout: Duration) -> Result<bool, Error> {
        ringbridge::backend::poll_until(timeout, || self.poll())
    }
}

/// Alternative (d): the persistent "volatile + fence" kernel.
fn volatile_fence(
    ctx: &Arc<CudaContext>,
    image: &[u8],
    work: &Workload,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u64>, CompareError> {
    let len = work.payload;
    let padded = len.next_multiple_of(128);
    let mem = Mapped::new(ctx, CONTROL_BYTES + 2 * padded)?;
    let words = mem.words();
    // Relaxed: written before the launch, which orders it for the kernel.
    words[LEN].store(len as u64, Ordering::Relaxed);
    let base = mem.device;
    let (in_off, out_off) = (CONTROL_BYTES, CONTROL_BYTES + padded);
    let block = u32::try_from(len.next_multiple_of(32).clamp(32, 1024)).unwrap_or(1024);
    let function = load(ctx, image, VOLATILE_FENCE_ENTRY)?;
    let stream = ctx.new_stream().map_err(cuda_err("cuStreamCreate"))?;
    let args = [base, base + in_off as u64, base + out_off as u64];
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&function);
    launch.arg(&args[0]).arg(&args[1]).arg(&args[2]);
    // SAFETY: the kernel takes three pointers into mapped memory (control
    // words, request, reply), which these device addresses of `mem` are; its
    // sizes match the offsets (CONTROL_BYTES of words, then two payloads of
    // `padded` bytes); `mem` outlives the kernel (leaked below if it does
    // not stop).
    unsafe { launch.launch(cfg) }.map_err(cuda_err("cuLaunchKernel"))?;
    let done = stream
        .record_event(None)
        .map_err(cuda_err("cuEventRecord"))?;
    let kernel = Persistent {
        _function: function,
        _stream: stream,
        done,
    };
    let input = &words[in_off / 8..in_off / 8 + len.div_ceil(8)];
    let output = &words[out_off / 8..out_off / 8 + len.div_ceil(8)];
    let result = volatile_fence_loop(&kernel, words, input, output, work, progress);
    // Stop the kernel whatever happened.
    // Release, like every request sequence (the kernel reads it volatile).
    words[REQUEST_SEQ].store(STOP, Ordering::Release);
    let stopped = kernel.wait_finished(REPLY_TIMEOUT);
    if matches!(stopped, Ok(false)) {
        // Still running: unloading its module, freeing its memory or
        // releasing the last reference to the primary context (which waits
        // for the device to go idle) would be undefined or block for good.
        eprintln!(
            "ringbridge: the volatile_fence kernel is still running; leaking its stream, \
             module, context and memory"
        );
        std::mem::forget(kernel);
        std::mem::forget(mem);
        std::mem::forget(Arc::clone(ctx));
    } else {
        // Returned or faulted: nothing of it runs any more.
        drop(kernel);
        drop(mem);
    }
    let samples = result?;
    if !stopped? {
        return Err(Error::Timeout {
            op: "stopping the volatile_fence kernel",
            after: REPLY_TIMEOUT,
        }
        .into());
    }
    Ok(samples)
}

/// The round trips of [`volatile_fence`].
fn volatile_fence_loop(
    kernel: &Persistent,
    words: &[AtomicU64],
    input: &[AtomicU64],
    output: &[AtomicU64],
    work: &Workload,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u64>, CompareError> {
    let name = CudaAlternative::VolatileFence.name();
    let mut request = vec![0u8; work.payload];
    let mut samples = Vec::with_capacity(usize::try_from(work.messages).unwrap_or(0));
    for i in 0..work.warmup + work.messages {
        fill(&mut request, i);
        let seq = i + 1;
        let t0 = Instant::now();
        store_bytes(input, &request);
        // Release: the payload stores above come first (x86 keeps stores in
        // order anyway); the kernel polls this word, then fences.
        words[REQUEST_SEQ].store(seq, Ordering::Release);
        let mut spins = 0u32;
        // Acquire: pairs with the kernel's fence before it published the
        // reply's sequence, so the reply bytes checked below are this one's.
        while words[REPLY_SEQ].load(Ordering::Acquire) != seq {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) {
                if kernel.poll()? {
                    return Err(Error::KernelExited.into());
                }
                if t0.elapsed() > REPLY_TIMEOUT {
                    return Err(CompareError::NoReply {
                        alternative: name,
                        message: i,
                        after: REPLY_TIMEOUT,
                    });
                }
            }
            std::hint::spin_loop();
        }
        check_reply(name, i, output, &request)?;
        let dt = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if i >= work.warmup {
            samples.push(dt);
        }
        progress(i + 1);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_and_checking_agree() {
        let mut req = vec![0u8; 21];
        fill(&mut req, 7);
        let words: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
        let reply: Vec<u8> = req.iter().map(|b| b.wrapping_add(1)).collect();
        store_bytes(&words, &reply);
        assert!(check_reply("t", 0, &words, &req).is_ok());
        store_bytes(&words, &req);
        assert!(matches!(
            check_reply("t", 3, &words, &req),
            Err(CompareError::WrongReply { message: 3, .. })
        ));
    }

    #[test]
    fn names_and_descriptions() {
        let names: Vec<&str> = CudaAlternative::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(
            names,
            [
                "launch_sync",
                "copy_launch_copy",
                "graph_replay",
                "volatile_fence"
            ]
        );
        assert_eq!(CudaAlternative::GraphReplay.name(), "graph_replay");
        assert_eq!(CudaAlternative::VolatileFence.name(), "volatile_fence");
        assert!(
            CudaAlternative::LaunchSync
                .description()
                .contains("cuLaunchKernel")
        );
        assert!(
            CudaAlternative::VolatileFence
                .description()
                .contains("__threadfence_system")
        );
    }

    #[test]
    fn an_empty_payload_is_refused() {
        let empty = Workload {
            device: 0,
            payload: 0,
            warmup: 0,
            messages: 1,
        };
        let err = measure(CudaAlternative::LaunchSync, &empty, &mut |_| {}).unwrap_err();
        assert!(matches!(err, CompareError::Cuda(Error::InvalidArgument(_))));
        assert!(err.to_string().contains("at least 1 byte"));
    }

    /// Every alternative, when a GPU is here; the error without a driver.
    #[test]
    fn measure_returns_the_timed_round_trips() {
        for alt in CudaAlternative::ALL {
            let work = Workload {
                device: 0,
                payload: 16,
                warmup: 1,
                messages: 3,
            };
            let mut done = 0;
            match measure(alt, &work, &mut |n| done = n) {
                Ok(rtts) => {
                    assert_eq!(rtts.len(), 3, "{}", alt.name());
                    assert_eq!(done, 4, "{}: warm-up included", alt.name());
                }
                // Without a driver (as on a machine without a GPU), always this error.
                Err(e) if !ringbridge::cuda::driver_available() => {
                    assert!(matches!(e, CompareError::Cuda(Error::CudaUnavailable(_))));
                }
                Err(e) => println!("{}: cannot measure here: {e}", alt.name()),
            }
        }
    }

    #[test]
    fn without_a_gpu_measure_is_an_error_not_a_panic() {
        if ringbridge::cuda::device_count().is_ok_and(|n| n > 0) {
            return;
        }
        let work = Workload {
            device: 0,
            payload: 64,
            warmup: 1,
            messages: 1,
        };
        for alt in CudaAlternative::ALL {
            assert!(measure(alt, &work, &mut |_| {}).is_err());
        }
    }
}
