//! The `strongroom` command.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    strongroom::cli::main()
}
