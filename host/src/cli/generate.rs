//! `advgame-host generate`: run a model folder on prompts from the command line.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::llm::{ChatRequest, Generator, SamplingParams};
use crate::model::{ChatModel, default_kind, parse_device};

/// Arguments of `advgame-host generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json, ...).
    #[arg(long)]
    pub model: PathBuf,
    /// Wrap each prompt in the model's chat template (as a user turn).
    #[arg(long)]
    pub chat: bool,
    /// System prompt (with --chat).
    #[arg(long)]
    pub system: Option<String>,
    /// Text that starts the answer (with --chat); printed as part of the output.
    #[arg(long)]
    pub prefill: Option<String>,
    /// cpu, cuda or cuda:N. CUDA runs in bf16, the CPU in f32.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// New tokens per prompt at most.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// 0 for greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Seed of the sampling RNG: the same seed, prompts and model give the same output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Extra stop string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Print JSON lines (text, token ids, finish reason, log-probs) instead of plain text.
    #[arg(long)]
    pub json: bool,
    /// Prompts, generated as one batch.
    #[arg(required = true)]
    pub prompts: Vec<String>,
}

/// Runs `generate`: loads the model and prints one output per prompt (plain text, or JSON
/// lines with `--json`).
pub fn run(args: GenerateArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let mut model = ChatModel::load(&args.model, device, default_kind(device))?;
    let params = SamplingParams {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        stop: args.stop.clone(),
    };
    let generations = if args.chat {
        let requests: Vec<ChatRequest> = args
            .prompts
            .iter()
            .map(|p| ChatRequest {
                system: args.system.clone(),
                user: p.clone(),
                prefill: args.prefill.clone(),
            })
            .collect();
        model.generate(&requests, &params)?
    } else {
        let prompts = args.prompts.iter().map(|p| model.encode(p)).collect::<Result<Vec<_>>>()?;
        let rows = model.generate_ids(&prompts, &params, true)?;
        rows.into_iter()
            .map(|row| model.to_generation(row, None, &params.stop))
            .collect::<Result<Vec<_>>>()?
    };
    for (prompt, generation) in args.prompts.iter().zip(&generations) {
        if args.json {
            println!("{}", serde_json::to_string(generation)?);
        } else if args.chat {
            println!("{}", generation.text);
        } else {
            println!("{prompt}{}", generation.text);
        }
    }
    Ok(())
}
