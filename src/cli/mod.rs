//! Command-line parsing and dispatch.

mod echo;
mod info;
mod latency;
mod stream;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ringbridge::Backend;

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
    /// Streaming rate: a producer and a consumer thread, pipelined, every reply checked.
    Stream(StreamArgs),
}

/// Options every bridge command shares.
#[derive(Args, Debug, Clone)]
pub(crate) struct BridgeArgs {
    /// auto, cuda or host.
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
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse().map_err(|e: ringbridge::Error| e.to_string())
}

impl BridgeArgs {
    /// A builder for these options.
    pub fn builder(&self) -> anyhow::Result<ringbridge::BridgeBuilder> {
        let slot = self
            .slot_size
            .unwrap_or_else(|| ringbridge::ring::RingSpec::slot_size_for(self.payload));
        Ok(ringbridge::Bridge::builder()
            .backend(self.backend)
            .device(self.device)
            .capacity(self.capacity)
            .slot_size(slot))
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { json } => info::run(json),
        Command::Echo(args) => echo::run(&args),
        Command::Stream(args) => stream::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringbridge: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
