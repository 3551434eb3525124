//! Command-line parsing and dispatch: `info`, `echo`, `stream`, `compare`, `idle`.

mod compare;
mod echo;
mod host_side;
mod idle;
mod info;
mod latency;
mod plot;
mod progress;
mod queue_ceiling;
mod spin;
mod stream;
mod stream_devices;
mod stream_through;
mod user_image;

use std::path::PathBuf;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ringbridge::Backend;
use ringbridge::ring::SlotFormat;

/// Host <-> persistent CUDA kernel messaging, measured.
#[derive(Parser, Debug)]
#[command(name = "ringbridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// What this machine has: driver, GPU, compiled kernels, the backend Auto picks.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Round-trip latency: one message in flight, every reply checked.
    Echo(EchoArgs),
    /// Streaming rate: a producer and a consumer thread, pipelined, every reply checked
    /// (by default; see --check).
    Stream(StreamArgs),
    /// The same echo round trip through the alternatives a user would
    /// otherwise pick, side by side with ringbridge, every reply checked.
    Compare(CompareArgs),
    /// The host's halves of a ring alone, one thread each, beside a plain memcpy.
    HostSide(HostSideArgs),
    /// What an idle bridge costs (CPU) and how fast it wakes, per wait policy.
    Idle(idle::IdleArgs),
}

/// Options every bridge command shares.
#[derive(Args, Debug, Clone)]
pub(crate) struct BridgeArgs {
    /// auto, cuda or fallback (`host` and `cpu` are accepted for fallback, `gpu` for cuda).
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pub backend: Backend,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Slots per ring (rounded up to a power of two).
    #[arg(long, default_value_t = 1024)]
    pub capacity: usize,
    /// Bytes per slot (a power of two >= 64); default: the smallest that fits the payload.
    #[arg(long)]
    pub slot_size: Option<usize>,
    /// Slot format: auto (flagged lanes for payloads up to 96 B), slots or
    /// lanes [default: auto; slots for `stream`, whose batches favour it].
    #[arg(long, value_parser = parse_format)]
    pub format: Option<SlotFormat>,
    /// Threads per block of the built-in CUDA kernel (1 to 1024)
    /// [default: 1024 for slots, 128 for lanes].
    #[arg(long)]
    pub block: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct EchoArgs {
    #[command(flatten)]
    pub bridge: BridgeArgs,
    /// Round trips to time.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Untimed round trips first.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u64,
    /// How much of each reply is checked: full (every byte + 1, the echo
    /// kernel's), len (correlation, kind and length), reply (correlation and
    /// kind: it answers its request) or none [default: full; reply with --image].
    #[arg(long, value_enum)]
    pub check: Option<CheckMode>,
    #[command(flatten)]
    pub image: user_image::ImageArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where to put the raw samples and their picture (`echo`, `compare`).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct OutputArgs {
    /// Draw the round-trip latency distribution into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write every raw round-trip time to this CSV file (`name,sample_ns`).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

impl OutputArgs {
    /// Fails before a long run, not after it, when a file could not be
    /// written where asked: its folder is missing, or the path is a folder.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        for (what, path) in [("plot", &self.plot), ("CSV file", &self.csv)] {
            let Some(path) = path else { continue };
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            if !dir.is_dir() {
                anyhow::bail!(
                    "cannot write the {what} {}: no folder {}",
                    path.display(),
                    dir.display()
                );
            }
            if path.is_dir() {
                anyhow::bail!("cannot write the {what} {}: it is a folder", path.display());
            }
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    #[command(flatten)]
    pub bridge: BridgeArgs,
    /// Timed round trips per alternative.
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Untimed round trips first, per alternative (on the fallback backend, per
    /// round: the floor and the fallback alternate in 10 rounds).
    #[arg(long, default_value_t = 500)]
    pub warmup: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub(crate) struct StreamArgs {
    #[command(flatten)]
    pub bridge: BridgeArgs,
    /// Messages to stream.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Messages per send batch (one head store each).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Ring pairs striped by the host (1 to 64), each with its own serving
    /// block (one kernel launch of N blocks on CUDA; N threads on the
    /// fallback) and its own producer and consumer threads.
    #[arg(long, default_value_t = 1)]
    pub stripes: usize,
    /// Stream to one bridge per device at once: `all` (every GPU; on the
    /// fallback, one bridge) or a list such as `0,1`. Each device carries
    /// --messages; per-device and total rates are reported. On CUDA each
    /// device's bridge is launched from a reservation made before any
    /// launch (see the README's "Many bridges and GPUs").
    #[arg(long, value_name = "all|LIST")]
    pub devices: Option<String>,
    /// How much of each reply the consumer checks: full (every byte),
    /// header (correlation, kind and length, and the last 8 bytes), len
    /// (correlation, kind and length), reply (correlation and kind) or none
    /// (replies counted, not read; the ring half still validates each
    /// header). Separates the host's cost from the serve loop's.
    /// [default: full; reply with --image, whose replies are unknown]
    #[arg(long, value_enum)]
    pub check: Option<CheckMode>,
    #[command(flatten)]
    pub image: user_image::ImageArgs,
}

/// How much of each reply `stream` and `echo` check.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckMode {
    /// Every byte.
    Full,
    /// Correlation, kind and length, and the last 8 bytes.
    Header,
    /// Correlation, kind and length (any kernel whose replies are as long
    /// as their requests).
    Len,
    /// Correlation and kind: each reply answers its request (any kernel).
    Reply,
    /// Counted only.
    None,
}

impl CheckMode {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Header => "header",
            Self::Len => "len",
            Self::Reply => "reply",
            Self::None => "none",
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct HostSideArgs {
    /// Payload sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 256, 1024, 4096])]
    pub sizes: Vec<usize>,
    /// Messages per batch (one publish, one release).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Slots per ring (rounded up to a power of two).
    #[arg(long, default_value_t = 1024)]
    pub capacity: usize,
    /// Wall-clock seconds per figure (ring and memcpy together).
    #[arg(long, default_value_t = 0.5)]
    pub seconds: f64,
    /// Rounds per figure; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse().map_err(|e: ringbridge::Error| e.to_string())
}

fn parse_format(s: &str) -> Result<SlotFormat, String> {
    s.parse().map_err(|e: ringbridge::Error| e.to_string())
}

impl BridgeArgs {
    /// A builder for these options, after checking that the payload fits a
    /// slot (a [`ringbridge::Error::PayloadTooLarge`] before anything is
    /// allocated, rather than at the first send).
    /// `default_format` applies when `--format` is not given.
    pub fn builder(&self, default_format: SlotFormat) -> anyhow::Result<ringbridge::BridgeBuilder> {
        use ringbridge::ring::RingSpec;
        let slot = self
            .slot_size
            .unwrap_or_else(|| RingSpec::slot_size_for(self.payload));
        let too_large = |max| ringbridge::Error::PayloadTooLarge {
            len: self.payload,
            max,
        };
        match RingSpec::new(self.capacity, slot) {
            Ok(spec) if self.payload > spec.max_payload() => {
                return Err(too_large(spec.max_payload()).into());
            }
            Ok(_) => {}
            // No slot size given: the payload is larger than the largest slot.
            Err(ringbridge::Error::InvalidSlotSize { .. }) if self.slot_size.is_none() => {
                let max =
                    ringbridge::layout::MAX_SLOT_SIZE - ringbridge::layout::MESSAGE_HEADER_SIZE;
                return Err(too_large(max).into());
            }
            Err(e) => return Err(e.into()),
        }
        let builder = ringbridge::Bridge::builder()
            .backend(self.backend)
            .device(self.device)
            .capacity(self.capacity)
            .slot_size(slot)
            .format(self.format.unwrap_or(default_format));
        Ok(match self.block {
            Some(threads) => builder.block_size(threads),
            None => builder,
        })
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { json } => info::run(json),
        Command::Echo(args) => echo::run(&args),
        Command::Stream(args) => stream::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::HostSide(args) => host_side::run(&args),
        Command::Idle(args) => idle::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringbridge: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
