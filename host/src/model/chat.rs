//! [`ChatModel`]: a [`CausalLm`] with its tokenizer, chat template and end-of-turn tokens,
//! serving [`crate::llm::Generator`] and the token-level scoring the trainer needs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use tch::{Device, Kind, Tensor};
use tokenizers::Tokenizer;

use crate::llm::{ChatRequest, Generation, Generator, SamplingParams};
use crate::model::causal_lm::CausalLm;
use crate::model::error::{FieldError, LoadError};
use crate::model::generate::{DecodeOptions, DecodedRow, decode};
use crate::model::scoring::{Completion, TokenLogprobs};
use crate::model::template::{ChatTemplate, Message};

/// Tokenizer-side files copied next to a saved checkpoint when present.
const TOKENIZER_FILES: [&str; 7] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
];

/// A chat language model ready to generate and score.
#[derive(Debug)]
pub struct ChatModel {
    lm: CausalLm,
    tokenizer: Tokenizer,
    /// The chat template; a template that cannot be read or compiled is kept as its error,
    /// so raw generation, scoring and training still work and only chat rendering fails.
    template: std::result::Result<Option<ChatTemplate>, String>,
    /// End-of-turn / end-of-sequence ids from generation_config.json, config.json and the
    /// tokenizer's `eos_token`.
    stop_token_ids: Vec<i64>,
    pad_token_id: i64,
    /// The folder the tokenizer files came from (copied by `save_pretrained`).
    source_dir: PathBuf,
}

/// What [`ChatModel::load`] accepts, checked before anything loads so that a wrong path is
/// one line naming it: a model folder ([`crate::model::causal_lm::check_model_folder`]), or
/// a PEFT adapter folder whose `base_model_name_or_path` is one.
///
/// Errors: the [`LoadError`] of the folder (or of the adapter's base, with the adapter named).
pub fn check_loadable(dir: &Path) -> Result<()> {
    match adapter_base(dir)? {
        Some(base) => crate::model::causal_lm::check_model_folder(&base)
            .with_context(|| format!("the base model of adapter {}", dir.display())),
        None => Ok(crate::model::causal_lm::check_model_folder(dir)?),
    }
}

/// The base model folder of `dir` when it is a PEFT adapter folder (`adapter_config.json`, no
/// `config.json`): its `base_model_name_or_path`, which it must then name; `None` otherwise.
fn adapter_base(dir: &Path) -> Result<Option<PathBuf>> {
    if !crate::model::lora::is_adapter_dir(dir) || dir.join("config.json").is_file() {
        return Ok(None);
    }
    let base = crate::model::lora::base_model_of(dir)?.with_context(|| {
        format!(
            "{}: no `base_model_name_or_path` to load the adapter onto",
            dir.join(crate::model::lora::CONFIG_FILE).display()
        )
    })?;
    Ok(Some(PathBuf::from(base)))
}

impl ChatModel {
    /// Loads model, tokenizer, chat template and stop tokens from a HF model folder.
    ///
    /// Errors: the root cause is a [`LoadError`] naming the file (and field or tensor). A chat
    /// template that does not compile is not one: it fails [`ChatModel::render_messages`].
    ///
    /// A PEFT adapter folder (`adapter_config.json`, no `config.json`) loads as
    /// `AutoPeftModelForCausalLM` does: the base named by its `base_model_name_or_path`, with
    /// the adapter on it (in `kind`), so every command that takes a model folder also takes
    /// a LoRA checkpoint.
    pub fn load(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        if let Some(base) = adapter_base(dir)? {
            let base = Self::load(&base, device, kind)
                .with_context(|| format!("loading the base model of adapter {}", dir.display()))?;
            return base.load_adapter(dir, Some(kind));
        }
        let lm = CausalLm::load(dir, device, kind)?;
        let model = Self::from_parts_typed(lm, dir)?;
        if let Err(e) = &model.template {
            tracing::warn!("{e} (chat rendering will fail; raw prompts still work)");
        }
        Ok(model)
    }

    /// Wraps an already-loaded model with the tokenizer files of `tokenizer_dir` (errors as
    /// for [`ChatModel::load`]).
    pub fn from_parts(lm: CausalLm, tokenizer_dir: &Path) -> Result<Self> {
        Ok(Self::from_parts_typed(lm, tokenizer_dir)?)
    }

    fn from_parts_typed(lm: CausalLm, tokenizer_dir: &Path) -> Result<Self, LoadError> {
        let tok_path = tokenizer_dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(LoadError::Missing {
                path: tok_path,
                what: "missing (the model folder needs a fast tokenizer)".into(),
            });
        }
        let tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| LoadError::Tokenizer {
            path: tok_path.clone(),
            message: format!("cannot load tokenizer: {e}"),
        })?;
        let vocab = lm.spec().vocab_size;
        let tok_vocab = tokenizer.get_vocab_size(true) as i64;
        let max_id = tokenizer.get_vocab(true).values().copied().max().map_or(-1, i64::from);
        if max_id >= vocab {
            return Err(LoadError::Tokenizer {
                path: tok_path,
                message: format!(
                    "tokenizer has {tok_vocab} tokens (largest id {max_id}) but config.json \
                     field `vocab_size` is {vocab}: tokenizer and model do not match"
                ),
            });
        }
        let template = ChatTemplate::from_dir(tokenizer_dir).map_err(|e| format!("{e:#}"));
        let (stop_token_ids, pad) = special_ids(&lm, &tokenizer, tokenizer_dir)?;
        let pad_token_id = pad.or(stop_token_ids.first().copied()).unwrap_or(0);
        Ok(Self {
            lm,
            tokenizer,
            template,
            stop_token_ids,
            pad_token_id,
            source_dir: tokenizer_dir.to_path_buf(),
        })
    }

    /// The underlying causal LM (weights, adapter, forward pass).
    pub fn lm(&self) -> &CausalLm {
        &self.lm
    }

    /// Mutable access to the causal LM, e.g. to switch dropout on for training.
    pub fn lm_mut(&mut self) -> &mut CausalLm {
        &mut self.lm
    }

    /// The tokenizer loaded from the model folder's `tokenizer.json`.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Ids that end a generated turn: `eos_token_id` of `generation_config.json`, then of
    /// `config.json`, then `eos_token` of `tokenizer_config.json`, deduplicated; never
    /// empty (loading fails without one).
    pub fn stop_token_ids(&self) -> &[i64] {
        &self.stop_token_ids
    }

    /// The id used for left padding: `pad_token_id` of `generation_config.json`, else of
    /// `config.json`, else `pad_token` of `tokenizer_config.json`, else the first stop id
    /// (as transformers' `generate` does). Padded positions are masked, so the value only
    /// has to be a valid id.
    pub fn pad_token_id(&self) -> i64 {
        self.pad_token_id
    }

    /// A copy sharing no trainable storage (EMA or frozen reference policy): a deep copy,
    /// or with an adapter, the same base and a deep copy of the adapter.
    pub fn try_clone(&self) -> Result<Self> {
        self.view(self.lm.try_clone()?)
    }

    /// This model with `adapter` on its projections, sharing the base weights (which are
    /// frozen from now on; see [`CausalLm::with_adapter`]).
    pub fn with_adapter(&self, adapter: crate::model::LoraAdapter) -> Result<Self> {
        self.view(self.lm.with_adapter(adapter)?)
    }

    /// Loads a PEFT adapter folder onto this model's base (see
    /// [`crate::model::LoraAdapter::load`]), in `kind` (the base's dtype when `None`).
    pub fn load_adapter(&self, dir: &Path, kind: Option<Kind>) -> Result<Self> {
        let kind = kind.unwrap_or(self.lm.kind());
        let adapter = crate::model::LoraAdapter::load(dir, self.lm.spec(), self.lm.device(), kind)?;
        self.with_adapter(adapter)
    }

    /// The same base with adapters off (frozen), e.g. the fixed reference of LoRA players.
    pub fn without_adapter(&self) -> Result<Self> {
        self.view(self.lm.without_adapter())
    }

    /// The same base with a deep copy of this model's adapter in `kind` (an f32 EMA copy).
    pub fn adapter_copy(&self, kind: Kind) -> Result<Self> {
        self.view(self.lm.adapter_copy(kind)?)
    }

    /// The full model with the adapter merged into the base weights, in `kind` (a deep copy;
    /// see [`CausalLm::merged`]).
    pub fn merged(&self, kind: Kind) -> Result<Self> {
        self.view(self.lm.merged(kind)?)
    }

    fn view(&self, lm: CausalLm) -> Result<Self> {
        let mut copy = Self::from_parts(lm, &self.source_dir)?;
        copy.stop_token_ids = self.stop_token_ids.clone();
        copy.pad_token_id = self.pad_token_id;
        Ok(copy)
    }

    /// The chat messages of a request (system turn only when given).
    pub fn messages(req: &ChatRequest) -> Vec<Message> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &req.system {
            messages.push(Message::new("system", system));
        }
        messages.push(Message::new("user", &req.user));
        messages
    }

    /// The exact prompt text: the chat template with the generation prompt, then the prefill.
    pub fn render_prompt(&self, req: &ChatRequest) -> Result<String> {
        let mut text = self.render_messages(&Self::messages(req), true)?;
        if let Some(prefill) = &req.prefill {
            text.push_str(prefill);
        }
        Ok(text)
    }

    /// Renders arbitrary messages with the model's chat template.
    pub fn render_messages(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self.template.as_ref().map_err(|e| anyhow!("{e}"))?;
        let template = template.as_ref().ok_or_else(|| {
            anyhow!(
                "{}: the model has no chat template (no chat_template.jinja and no \
                 `chat_template` in tokenizer_config.json)",
                self.source_dir.display()
            )
        })?;
        template.render(messages, add_generation_prompt)
    }

    /// Token ids of `text`, without adding special tokens (the chat template already has
    /// them), as `apply_chat_template(tokenize=True)` does.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Text of `ids` (special tokens kept, so nothing the model wrote is hidden).
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.tokenizer.decode(&ids, false).map_err(|e| anyhow!("detokenizing: {e}"))
    }

    /// Per-token completion log-probs (see [`CausalLm::token_logprobs`]).
    pub fn token_logprobs(&self, items: &[Completion]) -> Result<TokenLogprobs> {
        self.lm.token_logprobs(items)
    }

    /// Summed completion log-probs `[B]`, differentiable.
    pub fn sequence_logprobs(&self, items: &[Completion]) -> Result<Tensor> {
        self.lm.sequence_logprobs(items)
    }

    /// Saves weights, config, tokenizer files and a generation config in HF layout; a model
    /// with an adapter saves only the adapter, in PEFT layout (see
    /// [`CausalLm::save_pretrained`]).
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.lm.save_pretrained(dir)?;
        if self.lm.adapter().is_some() {
            return Ok(());
        }
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same(&self.source_dir, dir) {
            for name in TOKENIZER_FILES {
                let src = self.source_dir.join(name);
                if src.is_file() {
                    std::fs::copy(&src, dir.join(name)).with_context(|| {
                        format!("copying {} to {}", src.display(), dir.display())
                    })?;
                }
            }
        }
        let gen_config = serde_json::json!({
            "eos_token_id": self.stop_token_ids,
            "pad_token_id": self.pad_token_id,
        });
        let path = dir.join("generation_config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&gen_config)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Generates from already-tokenized prompts (no chat template). Used by the CLI's raw
    /// mode and by benchmarks.
    pub fn generate_ids(
        &self,
        prompts: &[Vec<i64>],
        params: &SamplingParams,
        use_stop_tokens: bool,
    ) -> Result<Vec<DecodedRow>> {
        let opts = self.decode_options(params, use_stop_tokens);
        let stops = &params.stop;
        decode(&self.lm, prompts, &opts, |_, tokens| {
            !stops.is_empty() && self.find_stop(tokens, stops).is_some()
        })
    }

    fn decode_options(&self, params: &SamplingParams, use_stop_tokens: bool) -> DecodeOptions {
        DecodeOptions {
            max_new_tokens: params.max_new_tokens,
            temperature: params.temperature,
            top_p: params.top_p,
            seed: params.seed,
            stop_token_ids: if use_stop_tokens { self.stop_token_ids.clone() } else { Vec::new() },
            pad_token_id: self.pad_token_id,
        }
    }

    /// Byte offset of the first stop string in the decoded `tokens`, if any.
    fn find_stop(&self, tokens: &[i64], stops: &[String]) -> Option<(String, usize)> {
        let text = self.decode(self.strip_stop_token(tokens)).ok()?;
        stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()))
            .min()
            .map(|i| (text, i))
    }

    fn strip_stop_token<'a>(&self, tokens: &'a [i64]) -> &'a [i64] {
        match tokens.split_last() {
            Some((last, rest)) if self.stop_token_ids.contains(last) => rest,
            _ => tokens,
        }
    }

    /// Turns a decoded row into a [`Generation`]: text = prefill + completion, cut before
    /// the first stop string and without the end-of-turn token.
    pub fn to_generation(
        &self,
        row: DecodedRow,
        prefill: Option<&str>,
        stops: &[String],
    ) -> Result<Generation> {
        let completion = match self.find_stop(&row.tokens, stops) {
            Some((mut text, cut)) => {
                text.truncate(cut);
                text
            }
            None => self.decode(self.strip_stop_token(&row.tokens))?,
        };
        let finish = row.finish;
        let text = format!("{}{completion}", prefill.unwrap_or(""));
        Ok(Generation { text, token_ids: row.tokens, finish, logprobs: row.logprobs })
    }
}

impl Generator for ChatModel {
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> Result<Vec<Generation>> {
        let mut prompts = Vec::with_capacity(requests.len());
        for (i, req) in requests.iter().enumerate() {
            let text = self.render_prompt(req).with_context(|| format!("request {i}"))?;
            prompts.push(self.encode(&text)?);
        }
        let rows = self.generate_ids(&prompts, params, true)?;
        rows.into_iter()
            .zip(requests)
            .map(|(row, req)| self.to_generation(row, req.prefill.as_deref(), &params.stop))
            .collect()
    }
}

/// Stop ids and pad id from generation_config.json, config.json and tokenizer_config.json.
///
/// Every end-of-sequence id of every file stops generation (`eos_token_id` may be a list).
/// The pad id is generation_config.json's, else config.json's, else the tokenizer's
/// `pad_token`; a negative or null id means unset (Meta's original LLaMA wrote `-1`), and the
/// caller then pads with an end-of-sequence id as transformers' `generate` does. An id outside
/// the vocabulary is refused naming the file and field.
fn special_ids(
    lm: &CausalLm,
    tokenizer: &Tokenizer,
    dir: &Path,
) -> Result<(Vec<i64>, Option<i64>), LoadError> {
    let vocab = lm.spec().vocab_size;
    let mut stops: Vec<i64> = Vec::new();
    let mut pad = None;
    let gen_path = dir.join("generation_config.json");
    if let Ok(text) = std::fs::read_to_string(&gen_path) {
        let gen_config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|cause| LoadError::Json { path: gen_path.clone(), cause })?;
        stops.extend(ids_of(&gen_config, "eos_token_id", &gen_path)?);
        pad = ids_of(&gen_config, "pad_token_id", &gen_path)?.first().copied();
        if let Some(p) = pad
            && p >= vocab
        {
            let message = format!("{p} is outside the vocabulary (vocab_size {vocab})");
            return Err(LoadError::Field {
                path: gen_path,
                error: FieldError::new("pad_token_id", message),
            });
        }
    }
    stops.extend(lm.config().eos_token_ids());
    pad = pad.or(lm.config().pad_token_id());
    let tc_path = dir.join("tokenizer_config.json");
    if let Ok(text) = std::fs::read_to_string(&tc_path) {
        let tc: serde_json::Value = serde_json::from_str(&text)
            .map_err(|cause| LoadError::Json { path: tc_path.clone(), cause })?;
        // A token is a string or an AddedToken-style object `{"content": ...}`.
        let token_id = |key: &str| -> Option<i64> {
            let v = tc.get(key)?;
            let s = v.as_str().or_else(|| v.get("content")?.as_str())?;
            tokenizer.token_to_id(s).map(i64::from)
        };
        stops.extend(token_id("eos_token"));
        pad = pad.or(token_id("pad_token"));
    }
    let mut unique = Vec::with_capacity(stops.len());
    for id in stops {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    if unique.is_empty() {
        return Err(LoadError::Missing {
            path: dir.to_path_buf(),
            what: "no end-of-sequence token in generation_config.json, config.json or \
                   tokenizer_config.json"
                .into(),
        });
    }
    Ok((unique, pad))
}

/// A token-id field of a JSON file: an id, a list of ids, or null. Negative ids mean unset
/// and are dropped; any other type is refused naming the file and field.
fn ids_of(json: &serde_json::Value, field: &str, path: &Path) -> Result<Vec<i64>, LoadError> {
    let bad = |v: &serde_json::Value| LoadError::Field {
        path: path.to_path_buf(),
        error: FieldError::new(
            field,
            format!("expected a token id, a list of ids or null, got {v}"),
        ),
    };
    let ids = match json.get(field) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v @ serde_json::Value::Number(n)) => vec![n.as_i64().ok_or_else(|| bad(v))?],
        Some(serde_json::Value::Array(a)) => {
            a.iter().map(|x| x.as_i64().ok_or_else(|| bad(x))).collect::<Result<Vec<_>, _>>()?
        }
        Some(v) => return Err(bad(v)),
    };
    Ok(ids.into_iter().filter(|id| *id >= 0).collect())
}
