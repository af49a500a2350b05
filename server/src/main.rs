//! The `ballast` binary.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    server::cli::main()
}
