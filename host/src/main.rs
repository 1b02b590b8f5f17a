//! Thin binary: parse arguments, hand over to the library.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = advgame_host::cli::Cli::parse();
    match advgame_host::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
