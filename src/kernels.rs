//! The built-in kernels' images, embedded at build time (the fallback's
//! side of them, and its FFI, is in [`crate::fallback`]).
//!
//! `build.rs` compiles every `kernels/*.cu` with nvcc (when it finds one) into
//! a fatbin, embedded here, and a PTX file (for inspection and tests). Without
//! nvcc the crate still builds: [`KERNELS_COMPILED`] is `false`,
//! [`NOT_COMPILED_REASON`] says why, and [`image`] returns
//! [`Error::KernelsNotCompiled`].
//!
//! Every built-in kernel has the C signature
//! `extern "C" __global__ void ENTRY(rb_control* ctl, rb_ring* h2k, rb_ring* k2h)`
//! and is launched with a grid of one block of up to 1024 threads (one
//! request per thread per batch). The handlers:
//! - [`ECHO_ENTRY`]: reply = request payload with every byte + 1 (wrapping),
//!   same `len`, `flags` echoed.
//! - [`SCALE_F32_ENTRY`]: the payload is an `f32` array; reply element
//!   `i` = `x[i] * factor`, `factor` the `f32` in the low 32 bits of the
//!   control block's `param` (read once at launch). A `len` that is not a
//!   multiple of 4 gets an error reply with code [`SCALE_ERR_BAD_LEN`].
//!
//! Replies: `seq` = the reply's K2H position, `correlation` = the request's
//! `seq`, `kind` = `KIND_REPLY` (or `KIND_ERROR` with the handler's code in
//! `flags` and `len` 0). Every kernel serves both slot formats (the rings'
//! `format` word): in lane format ([`crate::layout::FORMAT_LANES`]) warp `w`
//! of the block polls request `tail + w` with one coalesced 16-byte-per-thread
//! load and writes the reply's lanes the same way, so the block needs at
//! least 32 threads. A request whose `seq` is not its H2K position, whose
//! `kind` is not `KIND_REQUEST` or whose `len` exceeds the slot stops the
//! kernel with `ERR_RING_CORRUPTED` (detail: the position).
//!
//! Build configuration: see `build.rs` (`NVCC`, `CUDA_HOME`, `CUDA_PATH`,
//! `NVCC_CCBIN`, `RINGBRIDGE_CUDA_ARCHS`).

use crate::Error;

/// One compiled `kernels/*.cu` file.
///
/// ```
/// use ringbridge::kernels::{self, ECHO_ENTRY, FATBIN_MAGIC, KERNELS_COMPILED};
/// match kernels::image("echo") {
///     Ok(img) => {
///         assert_eq!(img.name, "echo");
///         assert!(img.fatbin.starts_with(&FATBIN_MAGIC));
///         assert_eq!(img.entries, [ECHO_ENTRY]);
///         assert!(img.ptx.contains(ECHO_ENTRY));
///     }
///     // Built without nvcc: no images at all.
///     Err(e) => {
///         assert!(!KERNELS_COMPILED);
///         assert!(matches!(e, ringbridge::Error::KernelsNotCompiled(_)));
///     }
/// }
/// ```
#[derive(Debug)]
pub struct KernelImage {
    /// The source's stem: `"echo"` or `"scale"`.
    pub name: &'static str,
    /// The fatbin nvcc produced (SASS and PTX for [`ARCHS`]), to load with
    /// the driver (`cuModuleLoadData`). Starts with [`FATBIN_MAGIC`].
    pub fatbin: &'static [u8],
    /// The same source as PTX for the highest architecture of [`ARCHS`], for
    /// inspection and tests.
    pub ptx: &'static str,
    /// The `extern "C"` entry points the image defines.
    pub entries: &'static [&'static str],
}

mod generated {
    use super::KernelImage;
    include!(concat!(env!("OUT_DIR"), "/kernel_images.rs"));

    pub(super) fn images() -> &'static [KernelImage] {
        IMAGES
    }
}

/// The built-in kernels (`kernels/echo.cu`, `kernels/scale.cu`) as
/// [`UserKernel`](crate::UserKernel)s: built by ringbridge-build exactly as
/// a user's kernel is, so the fallback runs them through their host entries.
pub(crate) mod builtin {
    include!(concat!(env!("OUT_DIR"), "/ringbridge_kernels.rs"));
}

/// Whether nvcc compiled the kernels when this crate was built.
pub const KERNELS_COMPILED: bool = generated::KERNELS_COMPILED;

/// Why the kernels were not compiled (nvcc not found, or its error); `""`
/// when they were.
pub const NOT_COMPILED_REASON: &str = generated::NOT_COMPILED_REASON;

/// The release of the nvcc that compiled the kernels (for example
/// `"13.0.88"`), `None` when they were not compiled.
pub const NVCC_VERSION: Option<&str> = generated::NVCC_VERSION;

/// The targets embedded in every fatbin, for example `["sm_90",
/// "compute_80"]`: `sm_XY` is machine code for that GPU, `compute_XY` is PTX
/// the driver compiles for XY and newer. Empty when not compiled.
pub const ARCHS: &[&str] = generated::ARCHS;

/// The block emulation library for Rust handlers, when it was built.
pub(crate) const CALLBACK_EMULATION: Option<&str> = generated::CALLBACK_EMULATION;

/// The first four bytes of every fatbin, `0xBA55ED50` little-endian.
pub const FATBIN_MAGIC: [u8; 4] = 0xBA55_ED50_u32.to_le_bytes();

/// Entry point of the echo kernel (image `"echo"`).
pub const ECHO_ENTRY: &str = "ringbridge_echo";
/// Entry point of the `f32` scale kernel (image `"scale"`).
pub const SCALE_F32_ENTRY: &str = "ringbridge_scale_f32";

// The device half's codes, defined once in `crate::layout` (exported to
// C++ through the generated header) and re-exported here beside the kernels
// that use them.
pub use crate::layout::{
    BAD_CHECK_INTERVAL, BAD_CONTROL, BAD_FORMAT, BAD_H2K, BAD_K2H, BAD_STRIPES,
    DETAIL_REPLY_TOO_LONG, ERR_REPLY_TOO_LONG, SCALE_ERR_BAD_LEN,
};

/// The generated `ringbridge_layout.h`: `#define RB_* VALUEull` for every
/// offset, size and constant of [`crate::layout`]. Include it (with
/// `kernels/ringbridge.cuh`) to write one's own kernels.
pub const LAYOUT_HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/ringbridge_layout.h"));

/// The compiled images (`echo` and `scale`); empty when the kernels were
/// not compiled.
///
/// ```
/// use ringbridge::kernels::{self, KERNELS_COMPILED};
/// assert_eq!(kernels::images().is_empty(), !KERNELS_COMPILED);
/// for img in kernels::images() {
///     // each image is found by its name and by each of its entry points
///     assert_eq!(kernels::image(img.name)?.name, img.name);
///     for entry in img.entries {
///         assert_eq!(kernels::image(entry)?.name, img.name);
///     }
/// }
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn images() -> &'static [KernelImage] {
    generated::images()
}

/// The image called `name` (`"echo"`, `"scale"`), or the image
/// that defines the entry point `name`.
///
/// # Errors
/// [`Error::KernelsNotCompiled`] when the crate was built without kernels;
/// [`Error::InvalidArgument`] when no image has that name or entry.
///
/// ```
/// use ringbridge::Error;
/// use ringbridge::kernels::{self, KERNELS_COMPILED, SCALE_F32_ENTRY};
/// if KERNELS_COMPILED {
///     // by entry point: the image that defines it
///     assert_eq!(kernels::image(SCALE_F32_ENTRY)?.name, "scale");
///     assert!(matches!(kernels::image("nope"), Err(Error::InvalidArgument(_))));
/// } else {
///     // built without nvcc: every lookup says so
///     assert!(matches!(kernels::image("echo"), Err(Error::KernelsNotCompiled(_))));
/// }
/// # Ok::<(), ringbridge::Error>(())
/// ```
pub fn image(name: &str) -> Result<&'static KernelImage, Error> {
    if !KERNELS_COMPILED {
        return Err(Error::KernelsNotCompiled(NOT_COMPILED_REASON.to_string()));
    }
    images()
        .iter()
        .find(|i| i.name == name)
        .or_else(|| images().iter().find(|i| i.entries.contains(&name)))
        .ok_or_else(|| {
            let known: Vec<&str> = images().iter().map(|i| i.name).collect();
            Error::InvalidArgument(format!(
                "no kernel image or entry `{name}` (images: {})",
                known.join(", ")
            ))
        })
}
