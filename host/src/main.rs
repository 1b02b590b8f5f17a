//! Thin binary: set up logging, parse arguments, hand over to the library.
use clap::Parser;

fn main() -> std::process::ExitCode {
    init_logging();
    let cli = advgame_host::cli::Cli::parse();
    match advgame_host::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log events go to standard error as `LEVEL message`: warnings by default (a plugin that
/// failed under the `continue` failure policy, a corrupt component cache, a remote request
/// retried), more with `RUST_LOG` (`RUST_LOG=debug`, `RUST_LOG=advgame_host=trace`, the
/// `tracing-subscriber` EnvFilter syntax). An unparsable `RUST_LOG` falls back to warnings.
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}
