//! The alternatives to a bridge that `ringbridge compare` measures on the
//! CUDA backend: the same echo work (reply = request with every byte + 1)
//! done the ways a user would otherwise pick, on the same GPU, each round
//! trip timed on the host and its reply checked.
//!
//! The kernels are in `kernels/compare.cu` (image `"compare"`).
//!
//! Not part of the stable API: it exists for the command-line tool.

use std::ffi::{CString, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cudarc::driver::{CudaContext, DriverError, result, sys};

use super::context::bind;
use super::{CudaKernel, MappedMemory, context, cuda_err};
use crate::backend::{Engine, SharedMemory};
use crate::error::Error;

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
///
/// ```
/// use ringbridge::cuda::compare::CudaAlternative;
/// let names: Vec<&str> = CudaAlternative::ALL.iter().map(|a| a.name()).collect();
/// assert_eq!(names, ["launch_sync", "copy_launch_copy", "graph_replay", "volatile_fence"]);
/// ```
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
    ///
    /// ```
    /// use ringbridge::cuda::compare::CudaAlternative;
    /// assert_eq!(CudaAlternative::GraphReplay.name(), "graph_replay");
    /// assert_eq!(CudaAlternative::VolatileFence.name(), "volatile_fence");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::LaunchSync => "launch_sync",
            Self::CopyLaunchCopy => "copy_launch_copy",
            Self::GraphReplay => "graph_replay",
            Self::VolatileFence => "volatile_fence",
        }
    }

    /// One line saying what is measured.
    ///
    /// ```
    /// use ringbridge::cuda::compare::CudaAlternative;
    /// assert!(CudaAlternative::LaunchSync.description().contains("cuLaunchKernel"));
    /// assert!(CudaAlternative::VolatileFence.description().contains("__threadfence_system"));
    /// ```
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
///
/// ```
/// use ringbridge::Error;
/// use ringbridge::cuda::compare::{CompareError, CudaAlternative, Workload, measure};
/// let empty = Workload { device: 0, payload: 0, warmup: 0, messages: 1 };
/// let err = measure(CudaAlternative::LaunchSync, &empty, &mut |_| {}).unwrap_err();
/// assert!(matches!(err, CompareError::Cuda(Error::InvalidArgument(_))));
/// assert!(err.to_string().contains("at least 1 byte"));
/// ```
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
///
/// ```
/// use ringbridge::cuda::compare::{CudaAlternative, Workload, measure};
/// let work = Workload { device: 0, payload: 64, warmup: 1, messages: 2 };
/// match measure(CudaAlternative::CopyLaunchCopy, &work, &mut |_| {}) {
///     Ok(rtts) => assert_eq!(rtts.len() as u64, work.messages), // warm-up not returned
///     Err(e) => println!("cannot measure here: {e}"),
/// }
/// ```
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
///
/// ```
/// use ringbridge::Error;
/// use ringbridge::cuda::compare::{CompareError, CudaAlternative, Workload, measure};
/// let work = Workload { device: 0, payload: 16, warmup: 1, messages: 3 };
/// let mut done = 0;
/// match measure(CudaAlternative::LaunchSync, &work, &mut |n| done = n) {
///     Ok(rtts) => {
///         assert_eq!(rtts.len(), 3);
///         assert_eq!(done, 4); // warm-up included
///     }
///     // Without a driver (as on a machine without a GPU), always this error.
///     Err(e) if !ringbridge::cuda::driver_available() => {
///         assert!(matches!(e, CompareError::Cuda(Error::CudaUnavailable(_))));
///     }
///     Err(e) => println!("cannot measure here: {e}"),
/// }
/// ```
pub fn measure(
    alt: CudaAlternative,
    work: &Workload,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<u64>, CompareError> {
    if work.payload == 0 {
        return Err(Error::InvalidArgument("the payload must be at least 1 byte".into()).into());
    }
    let ctx = context(work.device)?;
    let image = crate::kernels::image("compare")?.fatbin;
    match alt {
        CudaAlternative::VolatileFence => volatile_fence(&ctx, image, work, progress),
        _ => one_shot(&ctx, image, alt, work, progress),
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

/// The one-shot kernel loaded in a module, with a stream of its own.
struct OneShot {
    /// Keeps the context alive while the handles below exist.
    ctx: Arc<CudaContext>,
    /// The loaded `"compare"` image.
    module: sys::CUmodule,
    /// `ringbridge_cmp_oneshot` in `module`.
    function: sys::CUfunction,
    /// A non-blocking stream (null until created).
    stream: sys::CUstream,
}

impl OneShot {
    /// Loads `image` and creates the stream.
    fn new(ctx: &Arc<CudaContext>, image: &[u8]) -> Result<Self, Error> {
        // `cuModuleLoadData` wants the image 8-byte aligned.
        let mut aligned = vec![0u64; image.len() / 8 + 1];
        bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..image.len()].copy_from_slice(image);
        bind(ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // SAFETY: the context is current; `aligned` holds the whole image
        // followed by zero bytes and outlives the call (the driver copies it).
        let module = unsafe { result::module::load_data(aligned.as_ptr().cast()) }
            .map_err(cuda_err("cuModuleLoadData"))?;
        let mut this = Self {
            ctx: Arc::clone(ctx),
            module,
            function: std::ptr::null_mut(),
            stream: std::ptr::null_mut(),
        };
        let name = CString::new(ONESHOT_ENTRY)
            .map_err(|_| Error::InvalidArgument("entry point name contains a NUL byte".into()))?;
        // SAFETY: `module` is loaded and stays loaded while `this` lives.
        this.function = unsafe { result::module::get_function(module, name) }
            .map_err(cuda_err("cuModuleGetFunction"))?;
        this.stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(cuda_err("cuStreamCreate"))?;
        Ok(this)
    }

    /// Enqueues the kernel on the stream over device addresses `input` and
    /// `output`, `len` bytes.
    fn launch(&self, input: u64, output: u64, len: u32) -> Result<(), DriverError> {
        let mut a = input;
        let mut b = output;
        let mut n = len;
        let mut params: [*mut c_void; 3] = [
            (&raw mut a).cast(),
            (&raw mut b).cast(),
            (&raw mut n).cast(),
        ];
        let grid = len.div_ceil(ONESHOT_BLOCK).max(1);
        // SAFETY: `function` belongs to the loaded module, the stream to the
        // current context; the kernel takes (pointer, pointer, u32), and
        // `params` points at live values of those sizes, which the driver
        // copies before returning. `input`/`output` are device addresses of
        // at least `len` bytes that outlive the kernel (the caller
        // synchronizes before freeing them).
        unsafe {
            result::launch_kernel(
                self.function,
                (grid, 1, 1),
                (ONESHOT_BLOCK, 1, 1),
                0,
                self.stream,
                &mut params,
            )
        }
    }

    /// Waits for everything on the stream.
    fn sync(&self) -> Result<(), Error> {
        // SAFETY: the stream was created here and is destroyed only in `drop`.
        unsafe { result::stream::synchronize(self.stream) }.map_err(cuda_err("cuStreamSynchronize"))
    }
}

impl Drop for OneShot {
    fn drop(&mut self) {
        if bind(&self.ctx).is_err() {
            return;
        }
        if !self.stream.is_null() {
            // SAFETY: created here, destroyed once; errors are ignored (the
            // work on it has been synchronized or the context is broken).
            let _ = unsafe { result::stream::destroy(self.stream) };
        }
        // SAFETY: loaded here, unloaded once; no kernel of it runs any more
        // (every launch was synchronized before this drop).
        let _ = unsafe { result::module::unload(self.module) };
    }
}

/// Device memory from `cuMemAlloc`, freed on drop.
struct DeviceBuffer {
    /// Keeps the context alive.
    ctx: Arc<CudaContext>,
    /// The allocation's device address.
    ptr: sys::CUdeviceptr,
}

impl DeviceBuffer {
    /// Allocates `bytes` of device memory.
    fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Result<Self, Error> {
        bind(ctx).map_err(cuda_err("cuCtxSetCurrent"))?;
        // SAFETY: the context is current; the memory is only used as a copy
        // and kernel target, never read before being written.
        let ptr = unsafe { result::malloc_sync(bytes) }.map_err(|e| Error::Alloc {
            bytes,
            reason: super::describe(e),
        })?;
        Ok(Self {
            ctx: Arc::clone(ctx),
            ptr,
        })
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if bind(&self.ctx).is_ok() {
            // SAFETY: allocated here, freed once, after the stream that used
            // it was synchronized.
            let _ = unsafe { result::free_sync(self.ptr) };
        }
    }
}

/// A captured and instantiated CUDA graph, destroyed on drop.
struct Graph {
    /// Keeps the context alive.
    ctx: Arc<CudaContext>,
    /// The captured graph.
    graph: sys::CUgraph,
    /// Its executable instance (null until instantiated).
    exec: sys::CUgraphExec,
}

impl Drop for Graph {
    fn drop(&mut self) {
        if bind(&self.ctx).is_err() {
            return;
        }
        if !self.exec.is_null() {
            // SAFETY: instantiated here, destroyed once, not running (every
            // replay was synchronized).
            let _ = unsafe { sys::cuGraphExecDestroy(self.exec) };
        }
        if !self.graph.is_null() {
            // SAFETY: captured here, destroyed once, after its instance.
            let _ = unsafe { sys::cuGraphDestroy(self.graph) };
        }
    }
}

/// Enqueues H2D copy, kernel, D2H copy on `k`'s stream.
fn enqueue_copy_launch_copy(
    k: &OneShot,
    host_in: &MappedMemory,
    host_out: &MappedMemory,
    dev_in: &DeviceBuffer,
    dev_out: &DeviceBuffer,
    len: usize,
) -> Result<(), Error> {
    // SAFETY: `host_in` is pinned host memory of at least `len` bytes that
    // lives until the stream is synchronized; the host does not write it
    // while a copy is pending (it writes only between synchronizations);
    // `dev_in` holds at least `len` bytes.
    unsafe {
        sys::cuMemcpyHtoDAsync_v2(dev_in.ptr, host_in.words().as_ptr().cast(), len, k.stream)
    }
    .result()
    .map_err(cuda_err("cuMemcpyHtoDAsync_v2"))?;
    let n = u32::try_from(len).map_err(|_| Error::InvalidArgument("payload too large".into()))?;
    k.launch(dev_in.ptr, dev_out.ptr, n)
        .map_err(cuda_err("cuLaunchKernel"))?;
    // SAFETY: `host_out` is pinned host memory of at least `len` bytes that
    // lives until the stream is synchronized; the host reads it only after
    // synchronizing (through atomics, which never race in Rust's sense).
    unsafe {
        sys::cuMemcpyDtoHAsync_v2(
            host_out.words().as_ptr().cast_mut().cast(),
            dev_out.ptr,
            len,
            k.stream,
        )
    }
    .result()
    .map_err(cuda_err("cuMemcpyDtoHAsync_v2"))
}

/// Captures [`enqueue_copy_launch_copy`] into a graph and instantiates it.
fn capture(
    k: &OneShot,
    host_in: &MappedMemory,
    host_out: &MappedMemory,
    dev_in: &DeviceBuffer,
    dev_out: &DeviceBuffer,
    len: usize,
) -> Result<Graph, Error> {
    // SAFETY: the stream belongs to the current context and has no work.
    unsafe {
        sys::cuStreamBeginCapture_v2(
            k.stream,
            sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
        )
    }
    .result()
    .map_err(cuda_err("cuStreamBeginCapture_v2"))?;
    let enqueued = enqueue_copy_launch_copy(k, host_in, host_out, dev_in, dev_out, len);
    let mut graph: sys::CUgraph = std::ptr::null_mut();
    // SAFETY: ends the capture begun above (also after a failed enqueue, so
    // the stream leaves capture mode); `graph` is a live out-parameter.
    let ended = unsafe { sys::cuStreamEndCapture(k.stream, &raw mut graph) }.result();
    let mut graph = Graph {
        ctx: Arc::clone(&k.ctx),
        graph,
        exec: std::ptr::null_mut(),
    };
    enqueued?;
    ended.map_err(cuda_err("cuStreamEndCapture"))?;
    // SAFETY: `graph.graph` is a complete captured graph; `exec` is a live
    // out-parameter; no flags.
    unsafe { sys::cuGraphInstantiateWithFlags(&raw mut graph.exec, graph.graph, 0) }
        .result()
        .map_err(cuda_err("cuGraphInstantiateWithFlags"))?;
    Ok(graph)
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
    let host_in = MappedMemory::new(ctx, len)?;
    let host_out = MappedMemory::new(ctx, len)?;
    let devices = match alt {
        CudaAlternative::LaunchSync => None,
        _ => Some((DeviceBuffer::new(ctx, len)?, DeviceBuffer::new(ctx, len)?)),
    };
    let graph = match (&devices, alt) {
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
        match (&graph, &devices) {
            (Some(g), _) => {
                // SAFETY: the instance belongs to the current context; its
                // buffers outlive the replay, which is synchronized below.
                unsafe { sys::cuGraphLaunch(g.exec, kernel.stream) }
                    .result()
                    .map_err(cuda_err("cuGraphLaunch"))?;
            }
            (None, Some((din, dout))) => {
                enqueue_copy_launch_copy(&kernel, &host_in, &host_out, din, dout, len)?;
            }
            (None, None) => kernel
                .launch(host_in.device_address(), host_out.device_address(), n)
                .map_err(cuda_err("cuLaunchKernel"))?,
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
    Ok(samples)
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
    let mem = MappedMemory::new(ctx, CONTROL_BYTES + 2 * padded)?;
    let words = mem.words();
    // Relaxed: written before the launch, which orders it for the kernel.
    words[LEN].store(len as u64, Ordering::Relaxed);
    let base = mem.device_address();
    let (in_off, out_off) = (CONTROL_BYTES, CONTROL_BYTES + padded);
    let block = u32::try_from(len.next_multiple_of(32).clamp(32, 1024)).unwrap_or(1024);
    let kernel = CudaKernel::launch(
        ctx,
        image,
        VOLATILE_FENCE_ENTRY,
        1,
        block,
        [base, base + in_off as u64, base + out_off as u64],
        &crate::layout::LaunchArgs::default(),
    )?;
    let input = &words[in_off / 8..in_off / 8 + len.div_ceil(8)];
    let output = &words[out_off / 8..out_off / 8 + len.div_ceil(8)];
    let result = volatile_fence_loop(&kernel, words, input, output, work, progress);
    // Stop the kernel whatever happened; a kernel that does not stop is
    // leaked with its memory by `CudaKernel`'s drop rather than blocking.
    // Release, like every request sequence (the kernel reads it volatile).
    words[REQUEST_SEQ].store(STOP, Ordering::Release);
    let stopped = kernel.wait_finished(REPLY_TIMEOUT);
    drop(kernel);
    drop(mem);
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
    kernel: &CudaKernel,
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
            if spins % 4096 == 0 {
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
    fn without_a_gpu_measure_is_an_error_not_a_panic() {
        if crate::cuda::device_count().is_ok_and(|n| n > 0) {
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
