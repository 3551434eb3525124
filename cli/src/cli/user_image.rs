//! `--image PATH --entry NAME [--grid-block N]` of `echo` and `stream`: a
//! user's kernel image loaded as `Kernel::Custom`, CUDA only. On the host
//! backend a user's kernel runs from its own crate's `ringbridge-build`
//! output, which this binary cannot link, so that is a clear error saying
//! how to measure it there instead.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use ringbridge::{Backend, BridgeBuilder, Kernel};

use super::CheckMode;

/// A user's kernel image instead of the built-in echo kernel.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ImageArgs {
    /// A user's kernel image (cubin, fatbin or PTX) to serve the rings
    /// instead of the built-in echo kernel (CUDA backend only). Its replies
    /// are then checked only for answering their request (correlation and
    /// kind) unless --check says otherwise.
    #[arg(long, value_name = "PATH", requires = "entry")]
    pub image: Option<PathBuf>,
    /// The image's entry point (an `RB_KERNEL_ENTRY` name).
    #[arg(long, value_name = "NAME", requires = "image")]
    pub entry: Option<String>,
    /// Blocks in the user kernel's grid [default: 1, one serving block per
    /// ring pair]; threads per block come from --block [default: 1024].
    #[arg(long, value_name = "N", requires = "image")]
    pub grid_block: Option<u32>,
}

/// The help of the error for `--image` on the fallback backend.
const FALLBACK_HELP: &str = "a user's kernel runs on the host fallback through its own crate: \
build it with ringbridge-build and measure it with the library, e.g.\n    \
let bridge = Bridge::builder().backend(Backend::Fallback).kernel(Kernel::User(my_kernel())).launch()?;\n    \
let latency = ringbridge::measure::round_trips(&bridge, 10_000, |i, buf| fill(i, buf), |i, h, reply| check(i, h, reply))?;";

impl ImageArgs {
    /// The check to use when `--check` is not given, and whether `given`
    /// applies: the echo checks (full, header) need the echo kernel.
    pub(crate) fn check(&self, given: Option<CheckMode>) -> anyhow::Result<CheckMode> {
        match (self.image.is_some(), given) {
            (false, given) => Ok(given.unwrap_or(CheckMode::Full)),
            (true, None) => Ok(CheckMode::Reply),
            (true, Some(CheckMode::Full | CheckMode::Header)) => bail!(
                "--check full and --check header expect the echo kernel's replies; with --image use \
                 --check reply (the default), len or none"
            ),
            (true, Some(mode)) => Ok(mode),
        }
    }

    /// `builder` with the user's image as its kernel, when one was given.
    pub(crate) fn apply(
        &self,
        builder: BridgeBuilder,
        backend: Backend,
        block: Option<u32>,
    ) -> anyhow::Result<BridgeBuilder> {
        let (Some(path), Some(entry)) = (&self.image, &self.entry) else {
            return Ok(builder);
        };
        let image = std::fs::read(path)
            .with_context(|| format!("cannot read the kernel image {}", path.display()))?;
        if backend == Backend::Fallback {
            bail!(
                "--image loads a CUDA kernel image, which the fallback backend cannot run.\n\
                 help: {FALLBACK_HELP}"
            );
        }
        Ok(builder.kernel(Kernel::Custom {
            image: Arc::from(image),
            entry: entry.clone(),
            grid: self.grid_block.unwrap_or(1),
            block: block.unwrap_or(1024),
        }))
    }
}
