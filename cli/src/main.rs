//! The `ringbridge` command line: `info`, `echo`, `stream`, `compare`,
//! `host-side`, `idle` (package ringbridge-cli, not published; the library is
//! the `ringbridge` crate).

#[cfg(not(loom))]
mod cli;
#[cfg(not(loom))]
mod cuda_compare;

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// Under `--cfg loom` (the model tests) the library has no bridge, so there
/// is no command line; this keeps the binary target building.
#[cfg(loom)]
fn main() {}
