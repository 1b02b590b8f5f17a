//! Command-line interface: clap definitions and dispatch. The only place that prints for
//! humans; everything else returns typed results.

use clap::{Parser, Subcommand};

pub mod generate;
pub mod train;

#[derive(Debug, Parser)]
#[command(
    name = "advgame-host",
    version,
    about = "AdvGame self-play safety training with sandboxed WebAssembly judges"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Placeholder until the first real command lands.
    Version,
    /// Generate text with a Hugging Face model folder (Llama or Qwen2 family).
    Generate(generate::GenerateArgs),
    /// Train an attacker and a defender by AdvGame self-play.
    Train(train::TrainArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("advgame-host {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Generate(args) => generate::run(args),
        Command::Train(args) => train::run(args),
    }
}
