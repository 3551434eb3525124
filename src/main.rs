//! The `ringbridge` command line: `info`, `echo`, `stream`.

#[cfg(not(loom))]
mod cli;

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// Under `--cfg loom` (the model tests) the library has no bridge, so there
/// is no command line; this keeps the binary target building.
#[cfg(loom)]
fn main() {}
