//! The `switchyard` command line: owns the process (logging, signals,
//! binding), then hands a validated config and bound sockets to the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
