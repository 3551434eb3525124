//! The `ringbridge` command line: `info`, `echo`, `stream`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
