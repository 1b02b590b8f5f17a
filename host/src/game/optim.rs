//! AdamW (PyTorch semantics, decoupled weight decay) with a saveable state.
//!
//! Why not `tch::nn::Optimizer`: its state lives inside an opaque C++ object that cannot be
//! written out, and an exact `--resume` needs the first and second moments. This is the same
//! update, with the moments kept as named tensors (f32, whatever the parameter dtype) and
//! saved as safetensors. Parameters held in bf16/f16 get an f32 master copy: an update of
//! lr 1e-6 is far below bf16's resolution and would otherwise vanish when rounded back.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::game::checkpoint::CheckpointError;

/// AdamW as `torch.optim.AdamW` computes it: bias-corrected first and second moments, and
/// decoupled weight decay `p -= lr * weight_decay * p` before the Adam step. The learning
/// rate is passed per step (it follows the schedule).
#[derive(Debug)]
pub struct AdamW {
    /// Decay of the first moment, in [0, 1) (transformers' `adam_beta1`; paper: 0.9).
    pub beta1: f64,
    /// Decay of the second moment, in [0, 1) (transformers' `adam_beta2`; paper: 0.95).
    pub beta2: f64,
    /// Added to the square root of the bias-corrected second moment to avoid dividing by
    /// zero (transformers' `adam_epsilon`; PyTorch's default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay per unit of learning rate (paper: 0.1).
    pub weight_decay: f64,
    /// Number of updates applied so far (bias correction uses it).
    pub steps: u64,
    moments: BTreeMap<String, (Tensor, Tensor)>,
    /// f32 master weights of parameters stored in a lower precision.
    masters: BTreeMap<String, Tensor>,
}

/// The trainable variables of a store, sorted by name (a deterministic order).
fn trainable(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

impl AdamW {
    /// An optimiser with no state yet (step 0; moments start at zero on each variable's
    /// first update) and `eps` 1e-8.
    pub fn new(beta1: f64, beta2: f64, weight_decay: f64) -> Self {
        Self {
            beta1,
            beta2,
            eps: 1e-8,
            weight_decay,
            steps: 0,
            moments: BTreeMap::new(),
            masters: BTreeMap::new(),
        }
    }

    /// The f32 master weight of the trainable variable `name`, when it is held in a lower
    /// precision and has been updated at least once (f32 variables are their own master).
    pub fn master(&self, name: &str) -> Option<&Tensor> {
        self.masters.get(name)
    }

    /// Clears the gradients of every trainable variable.
    pub fn zero_grad(vs: &VarStore) {
        for (_, mut t) in trainable(vs) {
            t.zero_grad();
        }
    }

    /// Scales the gradients so their global L2 norm is at most `max` (skipped when `max` is
    /// 0); returns the norm before clipping.
    pub fn clip_grad_norm(vs: &VarStore, max: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> =
                trainable(vs).into_iter().map(|(_, t)| t.grad()).filter(Tensor::defined).collect();
            let total: f64 = grads
                .iter()
                .map(|g| {
                    let n = g.to_kind(Kind::Double).norm().double_value(&[]);
                    n * n
                })
                .sum::<f64>()
                .sqrt();
            if max > 0.0 && total > max {
                let scale = max / (total + 1e-6);
                for mut g in grads {
                    let _ = g.g_mul_scalar_(scale);
                }
            }
            total
        })
    }

    /// One update of every trainable variable that has a gradient.
    pub fn step(&mut self, vs: &VarStore, lr: f64) -> anyhow::Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        tch::no_grad(|| {
            for (name, mut p) in trainable(vs) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = g.to_kind(Kind::Float);
                let (m, v) = self
                    .moments
                    .entry(name.clone())
                    .or_insert_with(|| (g.zeros_like(), g.zeros_like()));
                let _ = m.g_mul_scalar_(self.beta1);
                let _ = m.g_add_(&(&g * (1.0 - self.beta1)));
                let _ = v.g_mul_scalar_(self.beta2);
                let _ = v.g_add_(&(g.square() * (1.0 - self.beta2)));
                let denom = (&*v / bc2).sqrt() + self.eps;
                let update = (&*m / bc1) / denom;
                if p.kind() == Kind::Float {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                    let _ = p.g_sub_(&(update * lr));
                } else {
                    let master = self.masters.entry(name).or_insert_with(|| p.to_kind(Kind::Float));
                    let _ = master.g_mul_scalar_(1.0 - lr * self.weight_decay);
                    let _ = master.g_sub_(&(update * lr));
                    p.f_copy_(master)?;
                }
            }
            Ok(())
        })
    }

    /// Writes the moments and step count (safetensors; the step rides in a 1-element tensor).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.moments.len() + 1);
        named.push(("__steps__".into(), Tensor::from_slice(&[self.steps as i64])));
        for (name, (m, v)) in &self.moments {
            named.push((format!("m.{name}"), m.shallow_clone()));
            named.push((format!("v.{name}"), v.shallow_clone()));
        }
        for (name, w) in &self.masters {
            named.push((format!("w.{name}"), w.shallow_clone()));
        }
        Tensor::write_safetensors(&named, path)
            .with_context(|| format!("cannot write optimiser state {}", path.display()))
    }

    /// Restores what [`AdamW::save`] wrote, moving the moments to `vs`'s device.
    ///
    /// # Errors
    /// [`CheckpointError::Safetensors`] when the file cannot be read;
    /// [`CheckpointError::Tensor`] for a tensor of an unknown name or variable, a moment or
    /// master that is not f32 or not of its variable's shape, or a first moment without its
    /// second.
    pub fn load(&mut self, path: &Path, vs: &VarStore) -> Result<(), CheckpointError> {
        let named = Tensor::read_safetensors(path).map_err(|e| CheckpointError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let device = vs.device();
        let known: BTreeMap<String, Tensor> = trainable(vs).into_iter().collect();
        let mut m_of = BTreeMap::new();
        let mut v_of = BTreeMap::new();
        let mut masters = BTreeMap::new();
        let mut steps = 0;
        for (name, t) in named {
            if name == "__steps__" {
                steps = t.int64_value(&[0]) as u64;
                continue;
            }
            let (table, var) = if let Some(var) = name.strip_prefix("m.") {
                (&mut m_of, var)
            } else if let Some(var) = name.strip_prefix("v.") {
                (&mut v_of, var)
            } else if let Some(var) = name.strip_prefix("w.") {
                (&mut masters, var)
            } else {
                return Err(CheckpointError::tensor(
                    path,
                    &name,
                    "unexpected tensor (expected __steps__, m.VAR, v.VAR or w.VAR)",
                ));
            };
            let Some(param) = known.get(var) else {
                return Err(CheckpointError::tensor(
                    path,
                    &name,
                    format!("state for unknown variable {var}"),
                ));
            };
            if t.kind() != Kind::Float || t.size() != param.size() {
                return Err(CheckpointError::tensor(
                    path,
                    &name,
                    format!(
                        "is {:?} {:?}, expected Float {:?} (the shape of {var})",
                        t.kind(),
                        t.size(),
                        param.size()
                    ),
                ));
            }
            table.insert(var.to_string(), t.to_device(device));
        }
        let mut moments = BTreeMap::new();
        for (var, m) in m_of {
            let v = v_of.remove(&var).ok_or_else(|| {
                CheckpointError::tensor(path, format!("m.{var}"), "no second moment v.{var}")
            })?;
            moments.insert(var, (m, v));
        }
        if let Some(var) = v_of.into_keys().next() {
            return Err(CheckpointError::tensor(path, format!("v.{var}"), "no first moment"));
        }
        self.moments = moments;
        self.masters = masters;
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, nn};

    fn one_param(init: f32) -> (VarStore, Tensor) {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[1], nn::Init::Const(f64::from(init)));
        (vs, w)
    }

    #[test]
    fn first_step_hand_computed() {
        // Loss 3 w, grad 3. First AdamW step: m_hat = 3, v_hat = 9 -> update = 3/(3+1e-8) ~ 1.
        // w = 2 * (1 - 0.1 * 0.5) - 0.1 * 1 = 1.9 - 0.1 = 1.8.
        let (vs, w) = one_param(2.0);
        let mut opt = AdamW::new(0.9, 0.95, 0.5);
        (&w * 3.0).sum(Kind::Float).backward();
        opt.step(&vs, 0.1).unwrap();
        assert!((w.double_value(&[0]) - 1.8).abs() < 1e-6, "{}", w.double_value(&[0]));
    }

    #[test]
    fn low_precision_parameters_keep_an_f32_master() {
        // bf16 cannot represent 1 - 1e-6: without a master copy the update would be lost.
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[1], nn::Init::Const(1.0));
        tch::no_grad(|| {
            let mut w = w.shallow_clone();
            w.set_data(&w.to_kind(Kind::BFloat16));
        });
        let mut opt = AdamW::new(0.9, 0.95, 0.0);
        for _ in 0..3 {
            AdamW::zero_grad(&vs);
            (&w.to_kind(Kind::Float) * 3.0).sum(Kind::Float).backward();
            opt.step(&vs, 1e-6).unwrap();
        }
        let master = opt.masters["w"].double_value(&[0]);
        assert!((master - (1.0 - 3e-6)).abs() < 1e-7, "{master}"); // f32 resolution near 1
        assert_eq!(w.kind(), Kind::BFloat16);
    }

    #[test]
    fn clip_scales_to_the_max_norm() {
        let (vs, w) = one_param(1.0);
        (&w * 4.0).sum(Kind::Float).backward();
        let n = AdamW::clip_grad_norm(&vs, 1.0);
        assert!((n - 4.0).abs() < 1e-9);
        assert!((w.grad().double_value(&[0]) - 1.0).abs() < 1e-5);
        AdamW::zero_grad(&vs);
        assert_eq!(w.grad().double_value(&[0]), 0.0);
    }

    #[test]
    fn saved_state_resumes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let run = |opt: &mut AdamW, vs: &VarStore, w: &Tensor| {
            AdamW::zero_grad(vs);
            (w * w).sum(Kind::Float).backward();
            opt.step(vs, 0.05).unwrap();
        };
        let (vs, w) = one_param(1.0);
        let mut opt = AdamW::new(0.9, 0.95, 0.1);
        run(&mut opt, &vs, &w);
        opt.save(&dir.path().join("opt.safetensors")).unwrap();
        let saved_w = w.double_value(&[0]);
        run(&mut opt, &vs, &w);
        let expected = w.double_value(&[0]);

        let (vs2, w2) = one_param(saved_w as f32);
        let mut opt2 = AdamW::new(0.9, 0.95, 0.1);
        opt2.load(&dir.path().join("opt.safetensors"), &vs2).unwrap();
        assert_eq!(opt2.steps, 1);
        run(&mut opt2, &vs2, &w2);
        assert!((w2.double_value(&[0]) - expected).abs() < 1e-7);
    }

    #[test]
    fn state_that_does_not_fit_the_model_is_a_typed_error_naming_file_and_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("opt.safetensors");
        let (vs, w) = one_param(1.0);
        let mut opt = AdamW::new(0.9, 0.95, 0.1);
        (&w * 2.0).sum(Kind::Float).backward();
        opt.step(&vs, 0.1).unwrap();
        opt.save(&file).unwrap();
        // Another shape.
        let other = VarStore::new(Device::Cpu);
        let _ = other.root().var("w", &[2], nn::Init::Const(0.0));
        let err = AdamW::new(0.9, 0.95, 0.1).load(&file, &other).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Tensor { path, tensor, .. }
                if path == &file && tensor.ends_with(".w")),
            "{err:?}"
        );
        // Another variable name.
        let renamed = VarStore::new(Device::Cpu);
        let _ = renamed.root().var("u", &[1], nn::Init::Const(0.0));
        let err = AdamW::new(0.9, 0.95, 0.1).load(&file, &renamed).unwrap_err();
        assert!(matches!(err, CheckpointError::Tensor { .. }), "{err:?}");
        // Not a safetensors file.
        std::fs::write(&file, b"not safetensors").unwrap();
        let err = AdamW::new(0.9, 0.95, 0.1).load(&file, &vs).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Safetensors { path, .. } if path == &file),
            "{err:?}"
        );
    }
}
