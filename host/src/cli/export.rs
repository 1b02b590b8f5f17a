//! `advgame-host export`: merge a PEFT LoRA adapter into its base model and write a full
//! Hugging Face folder (PEFT's `merge_and_unload()` + `save_pretrained`), loadable by
//! transformers' `AutoModelForCausalLM.from_pretrained` and by every command here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use tch::{Device, Kind};

use crate::model::{ChatModel, lora};

/// Arguments of `advgame-host export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// PEFT adapter folder (adapter_config.json + adapter_model.safetensors), e.g. a
    /// checkpoint's `attacker/` of a LoRA run.
    #[arg(long)]
    pub adapter: PathBuf,
    /// Base model folder; default: the adapter's `base_model_name_or_path`.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Output folder for the merged model (config, weights, tokenizer files).
    #[arg(long)]
    pub out: PathBuf,
    /// Weight dtype of the merged model: float32, bfloat16 or float16; default: the base
    /// config's `torch_dtype` (the merge itself is computed in float32).
    #[arg(long)]
    pub dtype: Option<String>,
}

/// Runs `export`: merges the adapter into the base weights (`W + B A * lora_alpha / r`,
/// PEFT's `merge_and_unload`) and writes a Hugging Face model folder to `--out`.
pub fn run(args: ExportArgs) -> Result<()> {
    crate::model::causal_lm::check_folder(
        &args.adapter,
        lora::CONFIG_FILE,
        "a PEFT adapter folder: adapter_config.json, adapter_model.safetensors",
    )
    .context("--adapter")?;
    let base = match &args.base {
        Some(b) => b.clone(),
        None => match lora::base_model_of(&args.adapter)? {
            Some(b) => PathBuf::from(b),
            None => bail!(
                "{}: no `base_model_name_or_path`; pass --base DIR",
                args.adapter.join(lora::CONFIG_FILE).display()
            ),
        },
    };
    match &args.base {
        Some(_) => crate::model::causal_lm::check_model_folder(&base).context("--base")?,
        None => crate::model::causal_lm::check_model_folder(&base).with_context(|| {
            format!(
                "the adapter's base model (base_model_name_or_path in {}; pass --base DIR for \
                 a local copy)",
                args.adapter.join(lora::CONFIG_FILE).display()
            )
        })?,
    }
    let kind = match args.dtype.as_deref() {
        Some(name) => kind_named(name).with_context(|| format!("--dtype {name}"))?,
        None => config_dtype(&base)?,
    };
    let model = ChatModel::load(&base, Device::Cpu, Kind::Float)?;
    let player = model.load_adapter(&args.adapter, Some(Kind::Float))?;
    let merged = player.merged(kind)?;
    merged.save_pretrained(&args.out)?;
    println!(
        "wrote {}: the adapter {} merged with its base {} (the base is unchanged)",
        args.out.display(),
        args.adapter.display(),
        base.display()
    );
    Ok(())
}

fn kind_named(name: &str) -> Result<Kind> {
    Ok(match name {
        "float32" | "f32" => Kind::Float,
        "bfloat16" | "bf16" => Kind::BFloat16,
        "float16" | "f16" => Kind::Half,
        other => bail!("expected float32, bfloat16 or float16, got `{other}`"),
    })
}

/// `torch_dtype` (or v5 `dtype`) of the base's config.json; float32 when absent.
fn config_dtype(base: &Path) -> Result<Kind> {
    let path = base.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match json.get("torch_dtype").or_else(|| json.get("dtype")).and_then(|v| v.as_str()) {
        Some(name) => {
            kind_named(name).with_context(|| format!("{}: field `torch_dtype`", path.display()))
        }
        None => Ok(Kind::Float),
    }
}
