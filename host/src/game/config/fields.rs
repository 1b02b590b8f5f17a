//! Every config key's documentation: meaning, unit and range, one entry per table and key in
//! file order. The default is not written here: `--print-config` (`docs.rs`) reads it from
//! [`super::Config::default`], so it cannot drift.

/// `(dotted key, documentation)` for every table and key, in file order. The text says what
/// the key does, its unit and its range; defaults are added from [`Config::default`].
pub const FIELDS: &[(&str, &str)] = &[
    ("models", "Which models play, where they run and in which precision."),
    (
        "models.attacker",
        "Attacker model folder (Hugging Face layout: config.json, safetensors, tokenizer). Path, relative to the working directory.",
    ),
    (
        "models.defender",
        "Defender model folder (Hugging Face layout); the model being made safer. Path.",
    ),
    (
        "models.judge",
        "Judge model served to judge plugins through the host `generate` import: a model folder (path), or an OpenAI-compatible server as a table {url, model, api_key_env, max_concurrency, timeout_s, max_retries, prefill, tokenizer} (see examples/llm-judge-http.toml). Unset = no judge model (heuristic judges need none).",
    ),
    ("models.device", "Where the models run: `cpu`, `cuda` or `cuda:N`."),
    ("models.dtype", "Parameter and compute precision: `f32`, `bf16` or `f16`."),
    (
        "models.adapter",
        "What the players train: `none` (full fine-tuning) or `lora` (LoRA adapters with PEFT's semantics on a frozen base; attacker and defender naming the same folder share ONE base, EMA copies are f32 adapters, the on-policy reference and GRPO's KL anchor is the base with adapters off; checkpoints hold PEFT adapter folders).",
    ),
    (
        "models.lora",
        "LoRA settings (PEFT `LoraConfig` names), used with `models.adapter = \"lora\"`.",
    ),
    ("models.lora.r", "Rank of each adapter's update B A. Integer, >= 1."),
    (
        "models.lora.lora_alpha",
        "Scaling numerator: the update is lora_alpha / r * B A (lora_alpha / sqrt(r) with use_rslora). > 0.",
    ),
    (
        "models.lora.lora_dropout",
        "Dropout probability on the adapter's input during updates (off while sampling and for references). In [0, 1).",
    ),
    (
        "models.lora.target_modules",
        "Projections to adapt: any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (default: all, PEFT's all-linear without the LM head).",
    ),
    (
        "models.lora.use_rslora",
        "Rank-stabilised scaling lora_alpha / sqrt(r) (Kalajdzievski 2023). true/false.",
    ),
    (
        "models.lora.attacker_adapter",
        "PEFT adapter folder (adapter_config.json + adapter_model.safetensors) the attacker starts from; it is also the attacker's fixed reference. Path; \"\" = a fresh adapter (B = 0: the base model).",
    ),
    (
        "models.lora.defender_adapter",
        "PEFT adapter folder the defender starts from (and its fixed reference). Path; \"\" = a fresh adapter.",
    ),
    (
        "data",
        "Seed requests: JSONL files of {\"id\", \"category\", \"text\"}, one file per category. Ids are strings or integers, unique across the training files and across the validation files.",
    ),
    ("data.harmful", "Training seeds of category harmful. Path to a JSONL file."),
    ("data.benign", "Training seeds of category benign. Path to a JSONL file."),
    (
        "data.harmful_val",
        "Held-out harmful seeds sent straight to the defender at validation. Path to a JSONL file; \"\" = none.",
    ),
    (
        "data.benign_val",
        "Held-out benign seeds sent straight to the defender at validation. Path to a JSONL file; \"\" = none.",
    ),
    ("game", "The rollout tree's shape and sampling."),
    (
        "game.attacks_per_seed",
        "A: attacker samples per seed (paper: 2 for DPO, 4 for GRPO). Unset, it is 4 with `algorithm.method = \"grpo\"`. Count, >= 1.",
    ),
    (
        "game.replies_per_prompt",
        "D: defender replies per valid attacker prompt (paper: 2 for DPO, 4 for GRPO). Unset, it is 4 with `algorithm.method = \"grpo\"`. Count, >= 1.",
    ),
    (
        "game.attacker_max_tokens",
        "Most new tokens per attacker output; an output that reaches it is truncated and invalid. Tokens, >= 1.",
    ),
    ("game.defender_max_tokens", "Most new tokens per defender reply. Tokens, >= 1."),
    (
        "game.judge_max_tokens",
        "Most new tokens per judge-model answer (served to judge plugins). Tokens, >= 1.",
    ),
    (
        "game.temperature",
        "Sampling temperature of both players (0 = greedy), unless set per player below. >= 0.",
    ),
    (
        "game.attacker_temperature",
        "The attacker's sampling temperature (0 = greedy); unset = `game.temperature`. >= 0.",
    ),
    (
        "game.defender_temperature",
        "The defender's sampling temperature (0 = greedy); unset = `game.temperature`. A small defender refuses more often near greedy, and DPO learns refusal only from groups that hold one. >= 0.",
    ),
    ("game.top_p", "Nucleus sampling: smallest token set with this much probability. In (0, 1]."),
    (
        "game.judge_temperature",
        "Judge-model sampling temperature for LLM judges (0 = greedy). >= 0.",
    ),
    (
        "game.faithfulness_gate",
        "Judge every attacker prompt for faithfulness to its seed; unfaithful prompts get reward -1 and no defender replies. true or false.",
    ),
    (
        "game.optimistic_attacker",
        "Judge the attacker on the defender's best reply to its prompt (else on a random one). true or false.",
    ),
    (
        "game.penalize_truncated_replies",
        "A defender reply that reached defender_max_tokens gets reward -1 without being judged (the paper). true or false.",
    ),
    (
        "game.defender_judge_context",
        "What the judge sees as the context of defender replies: `prompt` (the attacker's prompt, the paper) or `seed`.",
    ),
    (
        "game.swap_share",
        "Share of pairwise comparisons judged with A and B exchanged (scores flipped back), against position bias. Fraction in [0, 1].",
    ),
    (
        "game.both_orders_share",
        "Share of pairwise comparisons judged in both orders (scores averaged, agreement logged as judge/swap_agreement). Fraction in [0, 1].",
    ),
    (
        "game.faithful_threshold",
        "A faithfulness score at or above this counts as faithful. Rubric score, 0-10.",
    ),
    (
        "game.attacker_prompt_harmful",
        "The attacker's instruction for harmful seeds: a text file in which {seed} is replaced by the seed text. Path.",
    ),
    (
        "game.attacker_prompt_benign",
        "The attacker's instruction for benign seeds (a text file with {seed}). Path.",
    ),
    (
        "game.attacker_prefill",
        "Text that starts every attacker answer (part of the prompt, not trained). Text; \"\" = none.",
    ),
    ("game.attacker_stop", "Stop strings of attacker generation, matched exactly. List of texts."),
    (
        "game.direct_seed_share",
        "Share of each step's seeds per category (rounded) that the defender answers as written, without an attacker rewrite (the eval's distribution); they form no attacker group. In [0, 1]; default and paper: 0.",
    ),
    (
        "game.defender_sampling_system_prompt",
        "Context distillation (Askell et al. 2021, section 3): a text file whose content (trailing white space trimmed) is the system message put in front of the defender's prompt only while its replies are sampled; the loss scores those replies (policy and reference log-probs) on the prompt without it. GRPO's importance ratio then compares against sampler log-probs taken under the system message. Path; unset (default and paper) = sample with the trained prompt.",
    ),
    (
        "game.defender_sampling_prompt_template",
        "Context distillation in the user turn: a text file with one {prompt} slot; the defender's replies are sampled with this text (the prompt in the slot) as the user turn, and scored by the loss on the prompt alone. Combines with game.defender_sampling_system_prompt. Path; unset (default and paper) = the prompt as it is.",
    ),
    (
        "game.defender_sampling_prompt_template_benign",
        "The user-turn template (a text file with one {prompt} slot) that benign seeds' replies are sampled under instead of game.defender_sampling_prompt_template: with one that provokes refusals (RLCD's negative prompt, Yang et al. 2023) each benign group holds refusals beside the model's own answers, and the judge's pair teaches not to refuse harmless requests. Path; unset (default) = game.defender_sampling_prompt_template.",
    ),
    (
        "game.defender_sampling_categories",
        "The seed categories whose defender replies are sampled under game.defender_sampling_system_prompt and game.defender_sampling_prompt_template; the others are sampled on the prompt as it is. List of `harmful` and/or `benign`, not empty; default: both.",
    ),
    (
        "game.defender_sampling_share",
        "Share of each prompt's replies (game.replies_per_prompt, rounded to the nearest count) sampled under game.defender_sampling_system_prompt and game.defender_sampling_prompt_template; the rest are sampled on the bare prompt, so the judge's pair can contrast the two (RLCD, Yang et al. 2023). Fraction in [0, 1]; default 1 (every reply).",
    ),
    ("algorithm", "The learning algorithm and optimiser, identical for both players."),
    (
        "algorithm.method",
        "`dpo` (DPO with the EMA reference, the paper's main method), `ipo` or `grpo`.",
    ),
    (
        "algorithm.beta",
        "KL strength: DPO/IPO beta, or the GRPO k3-KL coefficient (TRL's `beta`). > 0.",
    ),
    (
        "algorithm.rpo_alpha",
        "RPO (Pang et al. 2024, eq. 3; TRL's `rpo_alpha`): adds rpo_alpha times the negative log-likelihood of the chosen completions, per token over the update's batch, to the DPO/IPO loss, so the preferred replies gain probability instead of only gaining on the rejected ones. Context distillation (game.defender_sampling_*) relies on it to make the bare prompt produce what the instruction did. >= 0; 0 (default and paper) = plain DPO/IPO; not with grpo.",
    ),
    (
        "algorithm.benign_rejected_refusal",
        "A refusal (text, e.g. \"I'm sorry, but I can't help with that.\") used as the rejected completion of every benign defender pair, against the group's best reply: a refusal of a harmless request is wrong without asking the judge. Unset (default and paper): the group's worst reply. DPO/IPO only.",
    ),
    (
        "algorithm.benign_retain_alpha",
        "Weight of the retain term: the per-token negative log-likelihood of the frozen initial defender's greedy replies to the step's benign prompts, added to the defender's loss so that learning to refuse harmful requests keeps the initial answers to harmless ones (the retain loss of RMU and circuit breakers). Costs one greedy generation of the benign prompts per step and keeps the initial defender in memory. >= 0; 0 (default and paper) = off.",
    ),
    (
        "algorithm.benign_retain_size",
        "Prompts in each step's retain set (with benign_retain_alpha > 0): the step's benign prompts, then benign training seeds drawn at random (seeded by algorithm.seed and the step) up to this number. Same weight, wider anchor; costs one greedy decode and one forward/backward per extra prompt. A whole number >= 0, at most the benign training seeds' count in effect (the draw stops when they run out); 0 (default) = the step's benign prompts only.",
    ),
    (
        "algorithm.sampler",
        "Which weights sample the rollouts: `ema` (the EMA copy, also the reference: the paper) or `current` (reference = the initial model).",
    ),
    (
        "algorithm.ema_decay",
        "EMA update after every step: ema = decay * ema + (1 - decay) * weights. In [0, 1].",
    ),
    ("algorithm.learning_rate", "AdamW peak learning rate (was `lr`). Per step, >= 0."),
    (
        "algorithm.adam_beta1",
        "AdamW decay rate of the running mean of gradients (transformers' name; the old `betas = [adam_beta1, adam_beta2]` is still read). Unitless, in [0, 1).",
    ),
    (
        "algorithm.adam_beta2",
        "AdamW decay rate of the running mean of squared gradients (transformers' name). Unitless, in [0, 1).",
    ),
    (
        "algorithm.adam_epsilon",
        "AdamW's epsilon, added to the root of the second moment before dividing (transformers' name and default). > 0.",
    ),
    (
        "algorithm.weight_decay",
        "AdamW decoupled weight decay. Per step, as a multiple of learning_rate, >= 0.",
    ),
    (
        "algorithm.min_lr_rate",
        "The cosine schedule decays the learning rate to min_lr_rate * learning_rate at max_steps (transformers' cosine_with_min_lr; was `final_lr_ratio`). Fraction in [0, 1].",
    ),
    (
        "algorithm.warmup_steps",
        "Steps of linear warm-up from learning_rate / warmup_steps to learning_rate. Steps, >= 0.",
    ),
    (
        "algorithm.max_grad_norm",
        "Clip each player's global gradient L2 norm to this (was `grad_clip`); 0 = no clipping. >= 0.",
    ),
    (
        "algorithm.max_steps",
        "Training steps (was `steps`); one step = one harmful and one benign batch of seeds, both players updated. Steps, >= 0.",
    ),
    (
        "algorithm.seeds_per_category",
        "Seeds of each category per step (the harmful ones when benign_seeds_per_step is set). Count, >= 1.",
    ),
    (
        "algorithm.benign_seeds_per_step",
        "Benign seeds per step when they should differ from seeds_per_category; unset = the same (the paper). Count, >= 1.",
    ),
    (
        "algorithm.grpo_ratio_cap",
        "GRPO: importance ratio to the sampling policy truncated at this value. >= 1.",
    ),
    (
        "algorithm.grpo_baseline",
        "GRPO advantage baseline: `batch` (mean over the player's batch of the step, the paper) or `group`.",
    ),
    (
        "algorithm.per_device_train_batch_size",
        "Sequences per forward/backward pass; gradients are accumulated over the step's batch, so this bounds memory, not the update (was `micro_batch`). Sequences, >= 1.",
    ),
    (
        "algorithm.update_order",
        "`per_category`: per step each player takes one optimiser update on its harmful groups, then one on its benign groups, each the mean over its own category (equal weight per category; the paper's order; the EMA moves once, after both). `pooled`: one update on all groups of the step.",
    ),
    (
        "algorithm.gradient_checkpointing",
        "Activation checkpointing per decoder layer (transformers' name): the forward pass keeps only each layer's input and backward recomputes one layer at a time; less activation memory (see `train --memory-plan`) for one extra forward pass. Gradients are unchanged.",
    ),
    (
        "algorithm.seed",
        "Master seed: every random choice of step t derives from (seed, t, purpose). Integer >= 0.",
    ),
    (
        "plugins",
        "Judge, rubric and curriculum plugins by name. A name resolves through `paths`, then dir/NAME.wasm, then dir/{judge,rubric,curriculum}-NAME.wasm.",
    ),
    (
        "plugins.dir",
        "Folder of built plugin components. Path; unset = $ADVGAME_PLUGIN_DIR, else $ADVGAME_CACHE/plugins, else ~/.cache/advgame/plugins.",
    ),
    ("plugins.judge", "Judge plugin name (e.g. `llm`, `refusal-heuristic`)."),
    (
        "plugins.curriculum",
        "Curriculum plugin name: `uniform` (the paper), `adaptive`, `lookalike` (plugins/README.md).",
    ),
    ("plugins.rubrics", "The rubric plugin used in each of the six judging roles."),
    (
        "plugins.rubrics.defender_harmful",
        "Rubric comparing defender replies to harmful seeds. Plugin name.",
    ),
    (
        "plugins.rubrics.defender_benign",
        "Rubric comparing defender replies to benign seeds. Plugin name.",
    ),
    (
        "plugins.rubrics.attacker_harmful",
        "Rubric comparing the best replies across attacks on a harmful seed. Plugin name.",
    ),
    (
        "plugins.rubrics.attacker_benign",
        "Rubric comparing the best replies across attacks on a benign seed. Plugin name.",
    ),
    (
        "plugins.rubrics.faithfulness_harmful",
        "Rubric scoring attacker prompts of harmful seeds for faithfulness. Plugin name.",
    ),
    (
        "plugins.rubrics.faithfulness_benign",
        "Rubric scoring attacker prompts of benign seeds for faithfulness. Plugin name.",
    ),
    (
        "plugins.paths",
        "Explicit component files by plugin name (`--plugin NAME=PATH` lands here). Table of name = path.",
    ),
    (
        "plugins.settings",
        "Per-plugin settings handed to the plugin through the host `config` import. Table of plugin name -> table of key = value (values reach the plugin as text).",
    ),
    ("plugins.failure_policy", "What happens when plugin calls fail."),
    (
        "plugins.failure_policy.max_step_failure_share",
        "Stop the run when more than this share of one step's judgments failed. Fraction in [0, 1].",
    ),
    (
        "plugins.failure_policy.max_total_failures",
        "Stop the run after this many failed judgments in total; 0 = no limit. Count.",
    ),
    (
        "plugins.failure_policy.curriculum",
        "When the curriculum fails or returns invalid indices: `uniform` samples that batch uniformly instead (counted in `curriculum/failures` and `curriculum/failures/<kind>`), `stop` ends the run.",
    ),
    (
        "plugins.failure_policy.max_consecutive_call_failures",
        "A plugin whose calls fail as a whole (trap, deadline, memory) this many times in a row stops the run; isolated failures are counted per item. Count, >= 1.",
    ),
    ("plugins.limits", "Sandbox limits applied to every plugin instance and call."),
    (
        "plugins.limits.deadline_ms",
        "Wall-clock budget of one plugin call (guest time; the judge model's generation is not charged). Milliseconds, >= 1.",
    ),
    ("plugins.limits.memory_mb", "Memory cap of one plugin instance. MiB, >= 1."),
    (
        "plugins.limits.fuel",
        "Wasm fuel (roughly instructions) per call; 0 = no fuel metering. Count.",
    ),
    (
        "plugins.limits.host_calls_per_item",
        "Host-service budget of one plugin call: `generate` and rubric-registry calls allowed per item of the batch; over it the call fails with kind `budget`. Count, >= 1.",
    ),
    (
        "plugins.limits.generate_tokens_per_item",
        "Tokens one plugin call may request from `generate` (requests x max_tokens), per item of the batch. Tokens, >= 1.",
    ),
    (
        "plugins.limits.call_wall_multiple",
        "Total wall-clock budget of one plugin call, host time included: this many deadline_ms, plus call_wall_ms_per_token per requested token. Multiple, >= 1.",
    ),
    (
        "plugins.limits.call_wall_ms_per_token",
        "Wall-clock allowance per token requested from `generate`, added to the call's total budget. Milliseconds.",
    ),
    ("validation", "Validation: the defender alone on the held-out seeds, scored pointwise."),
    (
        "validation.eval_steps",
        "Validate every N steps (was `every`), and before the first step and after the last; 0 = never. Steps.",
    ),
    (
        "validation.max_seeds",
        "At most this many seeds per category (the first ones of each file); 0 = all. Count.",
    ),
    (
        "validation.threshold",
        "A pointwise score at or above this counts as a hit in the val/*_rate metrics. Rubric score, 0-10.",
    ),
    (
        "validation.temperature",
        "Defender sampling temperature at validation (0 = greedy, reproducible). >= 0.",
    ),
    (
        "validation.harmful_rubrics",
        "Rubrics scored on harmful seeds (metrics val/harmful/<rubric>_rate). List of plugin names.",
    ),
    (
        "validation.benign_rubrics",
        "Rubrics scored on benign seeds (metrics val/benign/<rubric>_rate). List of plugin names.",
    ),
    (
        "checkpoint",
        "Checkpoints: both players, their EMA copies and optimiser states, in Hugging Face layout.",
    ),
    (
        "checkpoint.save_steps",
        "Checkpoint every N steps (was `every`), and after the last; 0 = only after the last. Steps.",
    ),
    (
        "checkpoint.save_total_limit",
        "Keep the newest N checkpoints (was `keep`); 0 = keep all. Count.",
    ),
    ("output", "Where runs are written."),
    ("output.dir", "Parent folder of run directories. Path."),
    (
        "output.name",
        "Run name; the run directory is dir/NAME-NNN with the first unused number. Text.",
    ),
];
