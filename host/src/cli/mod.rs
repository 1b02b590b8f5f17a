//! Command-line interface: clap definitions and dispatch. The only place that prints for
//! humans; everything else returns typed results.

use clap::{Parser, Subcommand};

pub mod eval;
pub mod export;
pub mod generate;
pub mod judge;
pub mod plugin;
pub mod plugin_arg;
mod plugin_new;
pub mod redteam;
pub mod serve;
pub mod stderr;
pub mod train;

/// The parsed command line of `advgame-host`.
#[derive(Debug, Parser)]
#[command(
    name = "advgame-host",
    version,
    about = "AdvGame self-play safety training with sandboxed WebAssembly judges"
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `advgame-host`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect, check, benchmark or scaffold plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run a judge plugin over a JSONL of comparisons/assessments; one JSON result per line.
    Judge(judge::JudgeArgs),
    /// Generate text with a Hugging Face model folder (Llama, Mistral, Qwen2 or Qwen3 family).
    Generate(generate::GenerateArgs),
    /// Train an attacker and a defender by AdvGame self-play.
    Train(train::TrainArgs),
    /// Serve a model folder over the OpenAI HTTP API (chat and completions).
    Serve(serve::ServeArgs),
    /// Evaluate models on labelled prompts: harmful ASR, benign compliance, reports and plots.
    Eval(eval::EvalArgs),
    /// Red-team a model with an attacker: ASR@1 and ASR@K against the direct baseline.
    Redteam(redteam::RedteamArgs),
    /// Merge a PEFT LoRA adapter into its base model: a full Hugging Face model folder.
    Export(export::ExportArgs),
}

/// Runs the parsed command; the binary prints its error chain and exits 1 on `Err`.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Judge(args) => judge::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Train(args) => train::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Redteam(args) => redteam::run(args),
        Command::Export(args) => export::run(args),
    }
}

/// A progress bar of `len` steps labelled `name` on standard error, as `eval` and `redteam`
/// draw it (only when standard error is a terminal: callers print a line otherwise).
pub(crate) fn progress_bar(name: &str, len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::default_bar()
            .template("{msg} {elapsed_precise} [{bar:30}] {pos}/{len} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(name.to_string());
    bar
}

/// The progress of a command that runs in phases (eval's targets, redteam's attacker and
/// target), on standard error: one [`progress_bar`] per phase on a terminal, one line per
/// phase otherwise (logs and pipes).
#[derive(Debug)]
pub(crate) struct PhaseProgress {
    terminal: bool,
    bar: Option<(indicatif::ProgressBar, stderr::BarGuard)>,
}

impl PhaseProgress {
    /// No phase started yet; decides bar or lines from whether standard error is a terminal.
    pub(crate) fn new() -> Self {
        use std::io::IsTerminal;
        Self { terminal: std::io::stderr().is_terminal(), bar: None }
    }

    /// Finishes the current phase and starts `name` of `len` steps: a bar, or `line` printed.
    pub(crate) fn start(&mut self, name: &str, len: u64, line: &str) {
        self.finish();
        if self.terminal {
            let bar = progress_bar(name, len);
            let guard = stderr::show(&bar);
            self.bar = Some((bar, guard));
        } else {
            eprintln!("{line}");
        }
    }

    /// Advances the current phase's bar by `n` steps (nothing without a bar).
    pub(crate) fn inc(&mut self, n: u64) {
        if let Some((bar, _)) = &self.bar {
            bar.inc(n);
        }
    }

    /// Finishes the current phase's bar, if any.
    pub(crate) fn finish(&mut self) {
        if let Some((bar, _guard)) = self.bar.take() {
            bar.finish();
        }
    }
}
