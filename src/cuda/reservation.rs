//! What later bridges need, made before any kernel runs: so bridges can be
//! launched (and stopped) while others serve.
//!
//! Page-locked allocations, device allocations and module loads can wait for
//! a device's running work (CUDA's implicit synchronization), forever for a
//! persistent kernel; without a reservation a second bridge is refused with
//! [`Error::DeviceBusy`]. A [`Reservation`] makes all of them up front, on
//! one device: one pinned, device-mapped arena for rings, one device
//! allocation for buffers, the kernels' modules (entry points loaded, which
//! lazy loading would otherwise do at the first launch) and a stream per
//! bridge. A bridge built with [`BridgeBuilder::reservation`] takes its share
//! with no driver call that waits, and gives it back when it is dropped.

use std::sync::{Arc, Mutex};

use cudarc::driver::CudaContext;

use super::context::context;
use super::module::KernelModule;
use super::reserved::{
    DeviceArena, Inner, REGION_ALIGN, ReservedBuffer, ReservedRegion, buffer_span,
};
use super::stream::{Stream, StreamPool};
use super::{MappedMemory, space::FreeSpace};
use crate::backend::{Backend, SharedMemory, launch::group_bytes};
use crate::bridge::BridgeBuilder;
use crate::buffer::{BufferInit, BufferMemory};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::sync::lock;

/// Memory, modules and streams on one GPU, prepared before any launch for
/// bridges launched later, possibly while others run.
///
/// Cheap to clone (a shared handle); the memory is freed when the last
/// clone and the last bridge using it are gone (and leaked, with a warning,
/// if a kernel of ours still runs then, as for a bridge's own memory).
///
/// ```no_run
/// use ringbridge::{Backend, Bridge, Kernel, cuda::Reservation};
/// let echo = Bridge::builder().backend(Backend::Cuda).kernel(Kernel::Echo);
/// let scale = Bridge::builder()
///     .backend(Backend::Cuda)
///     .kernel(Kernel::ScaleF32 { factor: 2.0 });
/// // Sized for both, made while no kernel of ours runs.
/// let reservation = Reservation::builder(0).bridge(&echo).bridge(&scale).reserve()?;
/// let a = echo.reservation(&reservation).launch()?;
/// // Launched while `a` serves: no DeviceBusy.
/// let b = scale.reservation(&reservation).launch()?;
/// assert_eq!(a.round_trip(b"a")?.payload, b"b");
/// a.shutdown()?; // each stops on its own
/// assert_eq!(b.round_trip(&2f32.to_le_bytes())?.payload, 4f32.to_le_bytes());
/// # Ok::<(), ringbridge::Error>(())
/// ```
#[derive(Clone)]
pub struct Reservation {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("device", &self.device())
            .field("free", &self.free())
            .finish_non_exhaustive()
    }
}

/// What a [`Reservation`] has not lent out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReservationFree {
    /// Bytes of the ring arena (in the largest free range).
    pub ring_bytes: usize,
    /// Bytes of the buffer arena (in the largest free range).
    pub buffer_bytes: usize,
    /// Streams.
    pub streams: usize,
}

/// Sizes a [`Reservation`], then makes it ([`Self::reserve`]).
#[derive(Clone, Debug)]
#[must_use = "call .reserve() to make the reservation"]
pub struct ReservationBuilder {
    device: usize,
    ring_bytes: usize,
    buffer_bytes: usize,
    streams: usize,
    kernels: Vec<(Arc<[u8]>, String)>,
    /// The first error met while sizing, returned by `reserve`.
    error: Option<String>,
}

impl Reservation {
    /// Starts sizing a reservation on CUDA device `device`.
    pub fn builder(device: usize) -> ReservationBuilder {
        ReservationBuilder {
            device,
            ring_bytes: 0,
            buffer_bytes: 0,
            streams: 0,
            kernels: Vec::new(),
            error: None,
        }
    }

    /// The device it was made on.
    pub fn device(&self) -> usize {
        self.inner.ctx.ordinal()
    }

    /// What is not lent out now.
    pub fn free(&self) -> ReservationFree {
        ReservationFree {
            ring_bytes: lock(&self.inner.ring_space).largest(),
            buffer_bytes: lock(&self.inner.buffer_space).largest(),
            streams: self.inner.streams.available(),
        }
    }

    /// The context everything was made in.
    pub(crate) fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// `bytes` of zeroed ring memory for one bridge or group, or `None` when
    /// the arena has no such free range.
    pub(crate) fn rings(&self, bytes: usize) -> Option<ReservedRegion> {
        ReservedRegion::take(&self.inner, bytes)
    }

    /// Buffer `index`, filled as `init` says, or `Ok(None)` when the
    /// arena has no room for it.
    pub(crate) fn buffer(
        &self,
        index: usize,
        init: &BufferInit,
    ) -> Result<Option<Box<dyn BufferMemory>>> {
        Ok(ReservedBuffer::take(&self.inner, index, init)?
            .map(|b| Box::new(b) as Box<dyn BufferMemory>))
    }

    /// A stream, or `None` when all are lent.
    pub(crate) fn stream(&self) -> Option<Stream> {
        self.inner.streams.take()
    }

    /// The loaded `entry` of `image`, or `None` when it was not loaded.
    pub(crate) fn module(&self, image: &[u8], entry: &str) -> Option<Arc<KernelModule>> {
        lock(&self.inner.modules)
            .iter()
            .find(|(i, e, _)| **i == *image && e == entry)
            .map(|(_, _, m)| Arc::clone(m))
    }

    /// Keeps `module` (loaded after all, while the device was idle) for
    /// later bridges.
    pub(crate) fn keep_module(&self, image: &[u8], entry: &str, module: &Arc<KernelModule>) {
        lock(&self.inner.modules).push((image.into(), entry.to_owned(), Arc::clone(module)));
    }
}

impl ReservationBuilder {
    /// Room for one bridge launched from `builder`: its rings, its buffers,
    /// its kernel's module and a stream. A builder that would not launch on
    /// CUDA adds nothing; one that cannot launch at all makes
    /// [`Self::reserve`] fail with its error.
    pub fn bridge(self, builder: &BridgeBuilder) -> Self {
        self.group(builder, 1)
    }

    /// Room for a [`StripedBridge`](crate::StripedBridge) of `stripes`
    /// launched from `builder` (one arena range, one module, one stream).
    pub fn striped(self, builder: &BridgeBuilder, stripes: usize) -> Self {
        self.group(builder, stripes)
    }

    fn group(mut self, builder: &BridgeBuilder, stripes: usize) -> Self {
        match needs(builder, stripes) {
            Ok(Some(need)) => {
                self.ring_bytes += need.ring_bytes;
                self.buffer_bytes += need.buffer_bytes;
                self.streams += 1;
                self = self.kernel_image(need.image, need.entry);
            }
            Ok(None) => {}
            Err(e) => {
                self.error.get_or_insert_with(|| e.to_string());
            }
        }
        self
    }

    /// Extra bytes of ring memory (each bridge's range is page-aligned).
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes += bytes;
        self
    }

    /// Extra bytes of buffer memory (each buffer is 256-byte aligned).
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes += bytes;
        self
    }

    /// Extra streams (one per bridge or striped group running at once).
    pub fn streams(mut self, count: usize) -> Self {
        self.streams += count;
        self
    }

    /// Loads `kernel`'s module too (a kernel with a CUDA image; others add
    /// nothing).
    pub fn kernel(self, kernel: &Kernel) -> Self {
        match super::launcher::cuda_image(kernel) {
            Ok(image) => self.kernel_image(image.bytes.into(), image.entry.to_owned()),
            Err(_) => self,
        }
    }

    fn kernel_image(mut self, image: Arc<[u8]>, entry: String) -> Self {
        if !self.kernels.iter().any(|(i, e)| *i == image && *e == entry) {
            self.kernels.push((image, entry));
        }
        self
    }

    /// Makes the reservation: pins the ring arena, allocates the buffer
    /// arena, creates the streams and loads the modules, all now.
    ///
    /// # Errors
    /// The first error a [`Self::bridge`] met sizing its builder (as
    /// [`Error::InvalidArgument`]); [`Error::CudaUnavailable`] or
    /// [`Error::DeviceOutOfRange`] without that GPU; [`Error::DeviceBusy`]
    /// while a kernel of this process may run (reserve before launching);
    /// [`Error::Alloc`], [`Error::InvalidImage`], [`Error::EntryNotFound`]
    /// or [`Error::Cuda`] as the allocation or loading fails.
    ///
    /// ```
    /// use ringbridge::{Bridge, Error, cuda::Reservation};
    /// // A builder that cannot launch fails the reservation, on any machine.
    /// let bad = Reservation::builder(0).bridge(&Bridge::builder().capacity(0)).reserve();
    /// assert!(matches!(bad, Err(Error::InvalidArgument(_))));
    /// // Without a driver there is nothing to reserve on.
    /// let r = Reservation::builder(0)
    ///     .ring_bytes(1 << 20)
    ///     .streams(2)
    ///     .reserve();
    /// if !ringbridge::cuda::driver_available() {
    ///     assert!(matches!(r, Err(Error::CudaUnavailable(_))));
    /// }
    /// ```
    pub fn reserve(self) -> Result<Reservation> {
        if let Some(e) = self.error {
            return Err(Error::InvalidArgument(format!(
                "a bridge of the reservation cannot launch: {e}"
            )));
        }
        let ctx = context(self.device)?;
        let rings = (self.ring_bytes > 0)
            .then(|| MappedMemory::new(&ctx, self.ring_bytes))
            .transpose()?;
        let buffers = (self.buffer_bytes > 0)
            .then(|| DeviceArena::new(&ctx, self.buffer_bytes))
            .transpose()?;
        let streams = StreamPool::new(&ctx, self.streams)?;
        let modules = self
            .kernels
            .into_iter()
            .map(|(image, entry)| {
                let module = Arc::new(KernelModule::load(&ctx, &image, &entry)?);
                Ok((image, entry, module))
            })
            .collect::<Result<Vec<_>>>()?;
        let ring_len = rings.as_ref().map_or(0, SharedMemory::len_bytes);
        let buffer_len = buffers.as_ref().map_or(0, DeviceArena::len);
        Ok(Reservation {
            inner: Arc::new(Inner {
                ctx,
                rings,
                ring_space: Mutex::new(FreeSpace::new(ring_len)),
                buffers,
                buffer_space: Mutex::new(FreeSpace::new(buffer_len)),
                streams,
                modules: Mutex::new(modules),
            }),
        })
    }
}

/// What one bridge or group launched from a builder takes from a
/// reservation.
struct Needs {
    ring_bytes: usize,
    buffer_bytes: usize,
    image: Arc<[u8]>,
    entry: String,
}

/// What `builder` would take for `stripes` bridges, or `None` when it would
/// not launch on CUDA.
fn needs(builder: &BridgeBuilder, stripes: usize) -> Result<Option<Needs>> {
    let plan = builder.plan(stripes)?;
    if plan.backend != Backend::Cuda {
        return Ok(None);
    }
    let ring_bytes = group_bytes(&plan.layout, stripes)?.next_multiple_of(REGION_ALIGN);
    let buffer_bytes = builder
        .buffer_inits()
        .iter()
        .map(|b| buffer_span(b.len()))
        .sum();
    let image = super::launcher::cuda_image(builder.kernel_ref())?;
    Ok(Some(Needs {
        ring_bytes,
        buffer_bytes,
        image: image.bytes.into(),
        entry: image.entry.to_owned(),
    }))
}
