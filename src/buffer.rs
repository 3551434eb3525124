//! Bridge-owned buffers: memory a kernel reads and writes beside its rings,
//! allocated by the bridge before the kernel starts and freed after it
//! stopped.
//!
//! Add them with [`BridgeBuilder::buffer`](crate::BridgeBuilder::buffer),
//! each from a [`BufferInit`]; they are numbered 0, 1, ... in the order
//! added, at most [`MAX_BUFFERS`]. At launch every buffer is allocated and
//! filled (device memory on CUDA, host memory on the fallback, its first
//! byte [`BUFFER_ALIGN`]-byte aligned), and the kernel finds buffer `i` in
//! its launch arguments ([`LaunchArgs::buffers`]`[i]`: address and size, as
//! the kernel addresses it). The host reads and writes them back with
//! [`Bridge::download`](crate::Bridge::download) and
//! [`Bridge::upload`](crate::Bridge::upload) once the kernel no longer runs
//! (after [`Bridge::shutdown`](crate::Bridge::shutdown)): while it may run,
//! the kernel's writes would race with the copy, and those calls return
//! [`Error::BufferInUse`].
//!
//! The buffers live as long as the [`Bridge`](crate::Bridge). A kernel that
//! would not stop (its shutdown timed out) keeps them: they are leaked with
//! it, never freed under it.
//!
//! A [`StripedBridge`](crate::StripedBridge) takes no buffers (its stripes
//! stop one by one, so no stripe could tell when the others stopped using a
//! shared buffer): it refuses them with [`Error::InvalidArgument`].
//!
//! ```
//! use ringbridge::buffer::BufferInit;
//! use ringbridge::{Backend, Bridge, Error};
//! let bridge = Bridge::builder()
//!     .backend(Backend::Fallback)
//!     .buffer(BufferInit::from_pod(&[1.0f32, 2.0, 3.0])) // buffer 0
//!     .buffer(BufferInit::zeroed(4096)) // buffer 1
//!     .launch()?;
//! // While the kernel may run, its buffers are its own.
//! assert!(matches!(bridge.download(0), Err(Error::BufferInUse { index: 0 })));
//! bridge.shutdown()?;
//! assert_eq!(bridge.download_pod::<f32>(0)?, [1.0, 2.0, 3.0]);
//! assert_eq!(bridge.download(1)?, vec![0; 4096]);
//! # Ok::<(), ringbridge::Error>(())
//! ```

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
pub use crate::layout::MAX_BUFFERS;
use crate::layout::{BufferRef, LaunchArgs};
use crate::sync::lock;

/// Alignment of every buffer's first byte, on both backends (CUDA's
/// `cuMemAlloc` gives at least this much).
pub const BUFFER_ALIGN: usize = 256;

/// A buffer to allocate at launch: its size and first contents.
///
/// ```
/// use ringbridge::buffer::BufferInit;
/// assert_eq!(BufferInit::zeroed(64).len(), 64);
/// assert_eq!(BufferInit::from_pod(&[0u32; 3]).len(), 12);
/// assert_eq!(BufferInit::from_bytes(vec![7; 5]).len(), 5);
/// assert!(BufferInit::zeroed(0).is_empty()); // refused at launch
/// ```
#[derive(Clone)]
pub struct BufferInit {
    bytes: usize,
    /// `None`: zeroed; else exactly `bytes` bytes.
    contents: Option<Arc<[u8]>>,
}

impl BufferInit {
    /// `bytes` zero bytes.
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .buffer(BufferInit::zeroed(100))
    ///     .launch()?;
    /// bridge.shutdown()?;
    /// assert_eq!(bridge.download(0)?, vec![0; 100]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn zeroed(bytes: usize) -> Self {
        Self {
            bytes,
            contents: None,
        }
    }

    /// A copy of `values`' bytes.
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .buffer(BufferInit::from_pod(&[1u64, 2, 3]))
    ///     .launch()?;
    /// bridge.shutdown()?;
    /// assert_eq!(bridge.download_pod::<u64>(0)?, [1, 2, 3]);
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn from_pod<T: bytemuck::Pod>(values: &[T]) -> Self {
        Self::from_bytes(bytemuck::cast_slice(values).to_vec())
    }

    /// These bytes.
    ///
    /// ```
    /// use ringbridge::buffer::BufferInit;
    /// use ringbridge::{Backend, Bridge};
    /// let bridge = Bridge::builder()
    ///     .backend(Backend::Fallback)
    ///     .buffer(BufferInit::from_bytes(b"table".to_vec()))
    ///     .launch()?;
    /// bridge.shutdown()?;
    /// assert_eq!(bridge.download(0)?, b"table");
    /// # Ok::<(), ringbridge::Error>(())
    /// ```
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            bytes: bytes.len(),
            contents: Some(Arc::from(bytes)),
        }
    }

    /// The buffer's size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether it has no byte (such a buffer is refused at launch).
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The first contents, `None` for zeroes.
    pub(crate) fn contents(&self) -> Option<&[u8]> {
        self.contents.as_deref()
    }
}

impl std::fmt::Debug for BufferInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferInit")
            .field("bytes", &self.bytes)
            .field("zeroed", &self.contents.is_none())
            .finish()
    }
}

/// Refuses a write of `len` bytes into a buffer of `bytes`.
pub(crate) fn check_fits(len: usize, bytes: usize) -> Result<()> {
    if len > bytes {
        return Err(Error::InvalidArgument(format!(
            "{len} bytes do not fit a buffer of {bytes}"
        )));
    }
    Ok(())
}

/// Refuses a set of buffers the kernel cannot be given: more than
/// [`MAX_BUFFERS`], or one of zero bytes.
pub(crate) fn check(inits: &[BufferInit]) -> Result<()> {
    if inits.len() > MAX_BUFFERS {
        return Err(Error::InvalidArgument(format!(
            "{} buffers: a kernel is given at most {MAX_BUFFERS}",
            inits.len()
        )));
    }
    if let Some(i) = inits.iter().position(BufferInit::is_empty) {
        return Err(Error::InvalidArgument(format!(
            "buffer {i} has zero bytes: a buffer holds at least one"
        )));
    }
    Ok(())
}

/// One allocated buffer, on either backend.
pub(crate) trait BufferMemory: Send + Sync {
    /// Its first byte, as the kernel addresses it.
    fn address(&self) -> u64;
    /// Its size in bytes.
    fn len(&self) -> usize;
    /// Copies the whole buffer into `out` (`out.len() == self.len()`).
    /// Only while the kernel does not run, and one copy at a time
    /// ([`Buffers::access`]).
    fn read(&self, out: &mut [u8]) -> Result<()>;
    /// Copies `src` (at most `self.len()` bytes) over the buffer's first
    /// bytes. Same conditions as `read`.
    fn write(&self, src: &[u8]) -> Result<()>;
}

/// Host memory for a buffer of the fallback: zeroed, [`BUFFER_ALIGN`]-byte
/// aligned, freed on drop.
pub(crate) struct HostBuffer {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: `HostBuffer` owns its allocation exclusively; the host touches it
// only through `read`/`write`, which the owner (`Buffers`) serialises with
// its `access` lock and calls only while the kernel does not run, and the
// serve thread only through the address it was given, while it runs.
unsafe impl Send for HostBuffer {}
// SAFETY: see `Send`: `&self` methods copy under the owner's lock.
unsafe impl Sync for HostBuffer {}

impl HostBuffer {
    /// Allocates and fills buffer `index` as `init` says.
    ///
    /// # Errors
    /// [`Error::Alloc`] when the memory cannot be had; [`Error::InvalidArgument`]
    /// for zero bytes.
    pub(crate) fn new(index: usize, init: &BufferInit) -> Result<Self> {
        let bytes = init.len();
        if bytes == 0 {
            return Err(Error::InvalidArgument(format!(
                "buffer {index} has zero bytes"
            )));
        }
        let layout = Layout::from_size_align(bytes, BUFFER_ALIGN).map_err(|e| Error::Alloc {
            bytes,
            reason: format!("buffer {index}: {e}"),
        })?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| Error::Alloc {
            bytes,
            reason: format!("buffer {index}: the allocator returned no memory"),
        })?;
        let buffer = Self { ptr, layout };
        if let Some(contents) = init.contents() {
            buffer.write(contents)?;
        }
        Ok(buffer)
    }
}

impl BufferMemory for HostBuffer {
    fn address(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    fn len(&self) -> usize {
        self.layout.size()
    }

    fn read(&self, out: &mut [u8]) -> Result<()> {
        let n = out.len().min(self.len());
        // SAFETY: `ptr` is valid for `len()` initialised bytes (zeroed at
        // allocation) and `n <= len()`; `out` is a distinct Rust slice, so
        // the ranges do not overlap. No one else writes the buffer during
        // the copy: the kernel no longer runs and `Buffers::access` is held.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), out.as_mut_ptr(), n) };
        Ok(())
    }

    fn write(&self, src: &[u8]) -> Result<()> {
        check_fits(src.len(), self.len())?;
        // SAFETY: `ptr` is valid for writes of `len()` bytes and
        // `src.len() <= len()`; `src` is a Rust slice, not this buffer. No
        // one else reads or writes the buffer during the copy (as in
        // `read`; at allocation nobody knows the address yet).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr(), src.len()) };
        Ok(())
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this very `layout`
        // and is freed only here. The owner drops it only after the kernel
        // stopped (or leaks it with a kernel that would not stop).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// The buffers of one bridge, in the order added.
pub(crate) struct Buffers {
    list: Vec<Box<dyn BufferMemory>>,
    /// Held for every copy in or out: two threads calling `download` and
    /// `upload` on one bridge take turns.
    access: Mutex<()>,
}

impl Buffers {
    /// No buffer.
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self::from_list(Vec::new())
    }

    /// Allocates every buffer of `inits` with `alloc(index, init)`, after
    /// [`check`]ing them. On an error, what was allocated is freed (no
    /// kernel knows it yet).
    pub(crate) fn allocate(
        inits: &[BufferInit],
        mut alloc: impl FnMut(usize, &BufferInit) -> Result<Box<dyn BufferMemory>>,
    ) -> Result<Self> {
        check(inits)?;
        let list = inits
            .iter()
            .enumerate()
            .map(|(i, init)| alloc(i, init))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_list(list))
    }

    fn from_list(list: Vec<Box<dyn BufferMemory>>) -> Self {
        Self {
            list,
            access: Mutex::new(()),
        }
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Writes every buffer's address and size, and their count, into `args`.
    pub(crate) fn describe(&self, args: &mut LaunchArgs) {
        args.buffers = [BufferRef::default(); MAX_BUFFERS];
        for (slot, buffer) in args.buffers.iter_mut().zip(&self.list) {
            *slot = BufferRef {
                addr: buffer.address(),
                bytes: buffer.len() as u64,
            };
        }
        args.buffer_count = self.list.len().min(MAX_BUFFERS) as u32;
    }

    /// Buffer `index`, or [`Error::InvalidArgument`].
    pub(crate) fn get(&self, index: usize) -> Result<&dyn BufferMemory> {
        self.list.get(index).map(|b| &**b).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no buffer {index}: the bridge has {}",
                self.list.len()
            ))
        })
    }

    /// A copy of buffer `index`. The caller has made sure the kernel no
    /// longer runs.
    pub(crate) fn download(&self, index: usize) -> Result<Vec<u8>> {
        let buffer = self.get(index)?;
        let _turn = lock(&self.access);
        let mut out = vec![0; buffer.len()];
        buffer.read(&mut out)?;
        Ok(out)
    }

    /// Copies `bytes` over the start of buffer `index`. The caller has made
    /// sure the kernel no longer runs.
    pub(crate) fn upload(&self, index: usize, bytes: &[u8]) -> Result<()> {
        let buffer = self.get(index)?;
        if bytes.len() > buffer.len() {
            return Err(Error::InvalidArgument(format!(
                "{} bytes do not fit buffer {index} of {} bytes",
                bytes.len(),
                buffer.len()
            )));
        }
        let _turn = lock(&self.access);
        buffer.write(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host buffer is aligned, starts with its contents (zeroes past
    /// them are impossible: the size is the contents'), reads back what
    /// was written over a prefix, and refuses more than it holds.
    #[test]
    fn host_buffers_hold_their_contents() {
        let b = HostBuffer::new(0, &BufferInit::from_bytes((1..=10).collect())).unwrap();
        assert_eq!(b.address() % BUFFER_ALIGN as u64, 0);
        assert_eq!(b.len(), 10);
        let mut out = [0u8; 10];
        b.read(&mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        b.write(&[0xaa; 3]).unwrap();
        b.read(&mut out).unwrap();
        assert_eq!(out, [0xaa, 0xaa, 0xaa, 4, 5, 6, 7, 8, 9, 10]);
        assert!(matches!(b.write(&[0; 11]), Err(Error::InvalidArgument(_))));

        let z = HostBuffer::new(1, &BufferInit::zeroed(1000)).unwrap();
        let mut out = vec![1u8; 1000];
        z.read(&mut out).unwrap();
        assert!(out.iter().all(|&x| x == 0));
        assert!(matches!(
            HostBuffer::new(2, &BufferInit::zeroed(0)),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn the_launch_arguments_describe_every_buffer() {
        let inits = [BufferInit::zeroed(512), BufferInit::from_pod(&[7u32; 3])];
        let buffers = Buffers::allocate(&inits, |i, init| {
            Ok(Box::new(HostBuffer::new(i, init)?) as Box<dyn BufferMemory>)
        })
        .unwrap();
        let mut args = LaunchArgs::default();
        args.buffers[5].addr = 99; // stale: overwritten
        buffers.describe(&mut args);
        assert_eq!(args.buffer_count, 2);
        assert_eq!(args.buffers[0].bytes, 512);
        assert_eq!(args.buffers[1].bytes, 12);
        assert_ne!(args.buffers[0].addr, args.buffers[1].addr);
        assert!(args.buffers[2..].iter().all(|b| *b == BufferRef::default()));
        // SAFETY: buffer 1 is 12 live bytes at that address, and nobody
        // writes it while this reads.
        let bytes = unsafe { std::slice::from_raw_parts(args.buffers[1].addr as *const u8, 12) };
        assert_eq!(bytes, bytemuck::cast_slice::<u32, u8>(&[7; 3]));
        assert_eq!(buffers.download(1).unwrap(), bytes);
        assert!(matches!(
            buffers.download(2),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn too_many_or_empty_buffers_are_refused() {
        let nine = vec![BufferInit::zeroed(8); MAX_BUFFERS + 1];
        let err = check(&nine).unwrap_err();
        assert!(err.to_string().contains("at most 8"), "{err}");
        assert!(check(&nine[..MAX_BUFFERS]).is_ok());
        let err = check(&[BufferInit::zeroed(8), BufferInit::zeroed(0)]).unwrap_err();
        assert!(err.to_string().contains("buffer 1 has zero bytes"), "{err}");
    }
}
