//! Test-only players and plugins for exercising the training loop without a language model:
//! a "menu" policy (one learnable logit per canned answer, so a step's effect is visible in
//! one number), a scripted generator, the one table judge and a seeded uniform curriculum
//! with state.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

use crate::game::policy::Policy;
use crate::judging::{
    Assessment, Category, Comparison, Curriculum, Failure, FailureKind, Judge, Outcome, RunJudge,
    ScoredPair, Seed,
};
use crate::llm::{ChatRequest, FinishReason, Generation, Generator, SamplingParams};
use crate::model::{Completion, TokenLogprobs};

/// A policy over a fixed menu of answers: token id k+1 means "answer k"; the answer does
/// not depend on the prompt. `menu.txt` (one answer per line) and `model.safetensors` (the
/// logits) form its directory.
#[derive(Debug)]
pub struct MenuPolicy {
    pub menu: Vec<String>,
    vs: VarStore,
    logits: Tensor,
}

impl MenuPolicy {
    /// Writes a menu model directory with all-zero logits.
    pub fn create(dir: &Path, menu: &[&str]) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("menu.txt"), menu.join("\n"))?;
        let vs = VarStore::new(Device::Cpu);
        let _ = vs.root().var("logits", &[menu.len() as i64], nn::Init::Const(0.0));
        vs.save(dir.join("model.safetensors"))?;
        Ok(())
    }

    /// Probabilities of the menu answers.
    pub fn probs(&self) -> Vec<f64> {
        let p = tch::no_grad(|| self.logits.softmax(0, Kind::Double));
        Vec::<f64>::try_from(p).expect("1-d")
    }
}

impl Generator for MenuPolicy {
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> anyhow::Result<Vec<Generation>> {
        let logp = tch::no_grad(|| self.logits.log_softmax(0, Kind::Double));
        let logp: Vec<f64> = Vec::try_from(logp)?;
        let t = f64::from(params.temperature.max(1e-3));
        let weights: Vec<f64> = logp.iter().map(|l| (l / t).exp()).collect();
        let total: f64 = weights.iter().sum();
        Ok(requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut rng = ChaCha8Rng::seed_from_u64(params.seed.wrapping_add(i as u64));
                let mut u = rng.random::<f64>() * total;
                let mut k = 0;
                while k + 1 < weights.len() && u >= weights[k] {
                    u -= weights[k];
                    k += 1;
                }
                let answer = &self.menu[k];
                let finish =
                    if answer.ends_with("...") { FinishReason::Length } else { FinishReason::Stop };
                Generation {
                    text: format!("{}{}", r.prefill.as_deref().unwrap_or(""), answer),
                    token_ids: vec![k as i64 + 1],
                    finish,
                    logprobs: vec![logp[k] as f32],
                }
            })
            .collect())
    }
}

/// Stores `logits` in `kind` (the menu's weights follow `models.dtype` like a real model's).
fn set_kind(logits: &Tensor, kind: Kind) {
    if logits.kind() != kind {
        tch::no_grad(|| logits.shallow_clone().set_data(&logits.to_kind(kind)));
    }
}

impl Policy for MenuPolicy {
    fn load(dir: &Path, _: Device, kind: Kind) -> anyhow::Result<Self> {
        let menu: Vec<String> =
            std::fs::read_to_string(dir.join("menu.txt"))?.lines().map(String::from).collect();
        let mut vs = VarStore::new(Device::Cpu);
        let logits = vs.root().var("logits", &[menu.len() as i64], nn::Init::Const(0.0));
        vs.load(dir.join("model.safetensors"))?;
        let logits = vs.variables().remove("logits").unwrap_or(logits);
        set_kind(&logits, kind);
        Ok(Self { menu, vs, logits })
    }

    fn prompt_ids(&self, _: &ChatRequest) -> anyhow::Result<Vec<i64>> {
        Ok(vec![0])
    }

    fn completion_ids(&self, text: &str) -> anyhow::Result<Vec<i64>> {
        let k = self.menu.iter().position(|m| m == text);
        let k = k.ok_or_else(|| anyhow::anyhow!("`{text}` is not on the menu"))?;
        Ok(vec![k as i64 + 1])
    }

    fn token_logprobs(&self, items: &[Completion]) -> anyhow::Result<TokenLogprobs> {
        let logp = self.logits.log_softmax(0, Kind::Float);
        let ids: Vec<i64> = items.iter().map(|x| x.completion_ids[0] - 1).collect();
        let picked = logp.index_select(0, &Tensor::from_slice(&ids)).view([items.len() as i64, 1]);
        let mask = Tensor::ones([items.len() as i64, 1], (Kind::Float, Device::Cpu));
        Ok(TokenLogprobs { logprobs: picked, mask })
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn try_clone(&self) -> anyhow::Result<Self> {
        let mut vs = VarStore::new(Device::Cpu);
        let logits = vs.root().var("logits", &[self.menu.len() as i64], nn::Init::Const(0.0));
        vs.copy(&self.vs)?;
        let logits = vs.variables().remove("logits").unwrap_or(logits);
        set_kind(&logits, self.logits.kind());
        Ok(Self { menu: self.menu.clone(), vs, logits })
    }

    fn save_pretrained(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("menu.txt"), self.menu.join("\n"))?;
        self.vs.save(dir.join("model.safetensors"))?;
        Ok(())
    }
}

/// Answers from a queue, one per request, and records every batch it was given.
#[derive(Debug, Default)]
pub struct ScriptedGenerator {
    pub outputs: VecDeque<(String, FinishReason)>,
    pub calls: Vec<Vec<ChatRequest>>,
}

impl ScriptedGenerator {
    pub fn new(outputs: &[(&str, FinishReason)]) -> Self {
        Self {
            outputs: outputs.iter().map(|(t, f)| (t.to_string(), *f)).collect(),
            calls: Vec::new(),
        }
    }
}

impl Generator for ScriptedGenerator {
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        _: &SamplingParams,
    ) -> anyhow::Result<Vec<Generation>> {
        self.calls.push(requests.to_vec());
        requests
            .iter()
            .map(|_| {
                let (text, finish) =
                    self.outputs.pop_front().ok_or_else(|| anyhow::anyhow!("script exhausted"))?;
                let n = text.len() as i64;
                Ok(Generation {
                    text,
                    token_ids: vec![n, n + 1],
                    finish,
                    logprobs: vec![-0.5, -0.25],
                })
            })
            .collect()
    }
}

/// The one scripted judge of the tests: scores texts from a table per rubric; a text the
/// table lacks scores `unknown` (5 by default; `None`, as in [`TableJudge::strict`], makes it
/// an `invalid-output` failure). Every item of a call whose number (from 1) is in
/// `fail_calls`, and every item whose text contains one of `fail_texts`, fails with
/// `fail_kind` (a trap by default). Every batch it was given is recorded.
#[derive(Debug)]
pub struct TableJudge {
    pub table: BTreeMap<(String, String), f32>,
    pub unknown: Option<f32>,
    pub fail_texts: Vec<String>,
    pub fail_calls: Vec<usize>,
    pub fail_kind: FailureKind,
    pub calls: usize,
    pub compare_calls: Vec<Vec<Comparison>>,
    pub assess_calls: Vec<Vec<Assessment>>,
}

impl Default for TableJudge {
    fn default() -> Self {
        Self {
            table: BTreeMap::new(),
            unknown: Some(5.0),
            fail_texts: Vec::new(),
            fail_calls: Vec::new(),
            fail_kind: FailureKind::Trap,
            calls: 0,
            compare_calls: Vec::new(),
            assess_calls: Vec::new(),
        }
    }
}

impl TableJudge {
    /// A judge for which a text missing from the table is a failure.
    pub fn strict() -> Self {
        Self { unknown: None, ..Self::default() }
    }
    /// Adds a score for `text` under `rubric`.
    pub fn score(mut self, rubric: &str, text: &str, s: f32) -> Self {
        self.table.insert((rubric.into(), text.into()), s);
        self
    }
    fn lookup(&self, rubric: &str, text: &str, call_failed: bool) -> Result<f32, Failure> {
        if call_failed || self.fail_texts.iter().any(|f| text.contains(f.as_str())) {
            return Err(Failure {
                kind: self.fail_kind,
                plugin: "table".into(),
                message: "scripted failure".into(),
            });
        }
        let known = self.table.get(&(rubric.to_string(), text.to_string())).copied();
        known.or(self.unknown).ok_or_else(|| Failure {
            kind: FailureKind::InvalidOutput,
            plugin: "table".into(),
            message: format!("no score for {rubric}/{text}"),
        })
    }
}

impl Judge for TableJudge {
    fn compare(
        &mut self,
        batch: &[Comparison],
    ) -> anyhow::Result<Vec<Result<ScoredPair, Failure>>> {
        self.calls += 1;
        self.compare_calls.push(batch.to_vec());
        let failed = self.fail_calls.contains(&self.calls);
        Ok(batch
            .iter()
            .map(|c| {
                Ok(ScoredPair {
                    a: self.lookup(&c.rubric, &c.a, failed)?,
                    b: self.lookup(&c.rubric, &c.b, failed)?,
                    rationale: None,
                })
            })
            .collect())
    }
    fn assess(&mut self, batch: &[Assessment]) -> anyhow::Result<Vec<Result<f32, Failure>>> {
        self.calls += 1;
        self.assess_calls.push(batch.to_vec());
        let failed = self.fail_calls.contains(&self.calls);
        Ok(batch.iter().map(|a| self.lookup(&a.rubric, &a.response, failed)).collect())
    }
}

impl RunJudge for TableJudge {}

/// Uniform sampling with its own RNG, whose state is its save-state (a step counter: each
/// draw's RNG derives from the init seed and the counter). `bad_from` makes it answer
/// out-of-range indices from that call on; `failing_observe` makes every `observe` fail
/// with that kind.
#[derive(Debug, Default)]
pub struct CountingCurriculum {
    pub pools: BTreeMap<bool, Vec<u32>>,
    pub seed: u64,
    pub draws: u64,
    pub observed: usize,
    pub bad_from: Option<u64>,
    pub failing_observe: Option<FailureKind>,
}

impl Curriculum for CountingCurriculum {
    fn init(&mut self, seeds: &[Seed], rng_seed: u64) -> Result<(), Failure> {
        self.seed = rng_seed;
        self.pools.clear();
        for (i, s) in seeds.iter().enumerate() {
            self.pools.entry(s.category == Category::Harmful).or_default().push(i as u32);
        }
        Ok(())
    }
    fn next_batch(&mut self, category: Category, size: u32) -> Result<Vec<u32>, Failure> {
        self.draws += 1;
        if self.bad_from.is_some_and(|b| self.draws >= b) {
            return Ok(vec![u32::MAX; size as usize]);
        }
        let pool = &self.pools[&(category == Category::Harmful)];
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ self.draws.wrapping_mul(0x9E37_79B9));
        Ok((0..size).map(|_| pool[rng.random_range(0..pool.len())]).collect())
    }
    fn observe(&mut self, outcomes: &[Outcome]) -> Result<(), Failure> {
        if let Some(kind) = self.failing_observe {
            return Err(Failure { kind, plugin: self.label(), message: "observe failed".into() });
        }
        self.observed += outcomes.len();
        Ok(())
    }
    fn save_state(&mut self) -> Result<Vec<u8>, Failure> {
        Ok(self.draws.to_le_bytes().to_vec())
    }
    fn load_state(&mut self, state: &[u8]) -> Result<(), Failure> {
        let bytes = state.try_into().map_err(|_| Failure {
            kind: FailureKind::Invalid,
            plugin: self.label(),
            message: format!("a state is 8 bytes, not {}", state.len()),
        })?;
        self.draws = u64::from_le_bytes(bytes);
        Ok(())
    }
    fn label(&self) -> String {
        "counting-curriculum".into()
    }
}
