//! The `strongroom` command.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so `strongroom audit show | head` would panic when `head` exits.
    // A closed stdout is not an error worth a backtrace: end quietly, as other tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    strongroom::cli::main()
}
