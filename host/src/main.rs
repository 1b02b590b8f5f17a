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
/// retried), more with `RUST_LOG` (`RUST_LOG=advgame_host=debug` for this crate's lines,
/// `RUST_LOG=debug` for every crate's, wasmtime's and tokenizers' included; the
/// `tracing-subscriber` EnvFilter syntax). An unparsable `RUST_LOG` falls back to warnings
/// and says so.
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let (filter, unparsable) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(e) => {
            let set = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
            (EnvFilter::new("warn"), set.map(|v| format!("{v:?} ({e})")))
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Through the progress bar, when one is drawn (`cli::stderr`).
        .with_writer(advgame_host::cli::stderr::LogWriter::new)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
    if let Some(value) = unparsable {
        tracing::warn!("RUST_LOG={value} is not a log filter; showing warnings only");
    }
}
