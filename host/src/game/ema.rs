//! The "mirror descent" copy: after every step `ema <- d * ema + (1 - d) * theta`, variable
//! by variable (matched by name). The EMA model samples the rollouts and is the DPO/IPO
//! reference, which keeps the game's players from chasing each other's latest move.
//!
//! Precision: the lerp always runs in f32. An EMA variable held in f32 (f32 runs, LoRA
//! adapter sets) is its own master and moves in place, exactly as before. An EMA variable
//! held in bf16/f16 gets an f32 **EMA master** ([`EmaMasters`]): the master moves and the model's
//! variable is the master cast to its dtype. Without it, `0.95 ema + 0.05 theta` computed in
//! bf16 rounds back to `ema` whenever the move `0.05 (theta - ema)` is under half of bf16's
//! spacing (8 significant bits: the spacing is 2^-7 ~ 0.008 for values in [1, 2)), i.e. until
//! theta is ~0.08 away from the EMA; at the paper's learning rates (1e-6) the EMA never
//! moved and DPO-MD quietly became "sample from the initial model". The target `theta` is the optimiser's f32
//! master weight when it keeps one ([`crate::game::optim::AdamW::master`]), not the rounded
//! bf16 weight, so the EMA follows the weights the optimiser actually holds.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::game::checkpoint::CheckpointError;

/// The f32 EMA masters of one player's EMA copy (empty when every EMA variable is f32).
///
/// Saved next to the EMA model in a checkpoint ([`EmaMasters::save`]); a resumed run loads them
/// ([`EmaMasters::load`]) and continues bit for bit. A master is created on the first update, from
/// the EMA variable itself (at that point the EMA copy still equals the loaded weights, which
/// are exact in f32).
#[derive(Debug, Default)]
pub struct EmaMasters {
    masters: BTreeMap<String, Tensor>,
}

impl EmaMasters {
    /// No masters yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The f32 master of the EMA variable `name`, if it is held in a lower precision and has
    /// been updated at least once.
    pub fn master(&self, name: &str) -> Option<&Tensor> {
        self.masters.get(name)
    }

    /// Number of f32 masters held (0 for an all-f32 EMA copy).
    pub fn len(&self) -> usize {
        self.masters.len()
    }

    /// True when no master is held.
    pub fn is_empty(&self) -> bool {
        self.masters.is_empty()
    }

    /// Moves every variable of `ema` towards the same-named variable of `current`:
    /// `e <- e + (1 - decay) (theta - e)` in f32, where `theta` is `f32_weights[name]` when
    /// given (the optimiser's f32 master) and `current`'s variable cast to f32 otherwise.
    ///
    /// Errors: the two stores differ in variable names or shapes.
    pub fn update(
        &mut self,
        ema: &VarStore,
        current: &VarStore,
        f32_weights: &dyn Fn(&str) -> Option<Tensor>,
        decay: f64,
    ) -> anyhow::Result<()> {
        let theirs = current.variables();
        let ours = ema.variables();
        if ours.len() != theirs.len() {
            bail!(
                "EMA update: {} variables in the EMA copy, {} in the model",
                ours.len(),
                theirs.len()
            );
        }
        let weight = 1.0 - decay;
        tch::no_grad(|| {
            for (name, mut e) in ours {
                let t = theirs
                    .get(&name)
                    .with_context(|| format!("EMA update: model has no variable {name}"))?;
                if e.size() != t.size() {
                    bail!(
                        "EMA update: {name} has shape {:?} in the EMA copy, {:?} in the model",
                        e.size(),
                        t.size()
                    );
                }
                let target = match f32_weights(&name) {
                    Some(w) => w,
                    None if t.kind() == Kind::Float => t.shallow_clone(),
                    None => t.to_kind(Kind::Float),
                };
                if e.kind() == Kind::Float {
                    // lerp: e + w (t - e) = (1 - w) e + w t with w = 1 - d.
                    let _ = e.lerp_(&target, weight);
                } else {
                    let master = self.masters.entry(name).or_insert_with(|| e.to_kind(Kind::Float));
                    let _ = master.lerp_(&target, weight);
                    e.f_copy_(master)?;
                }
            }
            Ok(())
        })
    }

    /// Writes the masters as f32 safetensors (`name -> tensor`); writes nothing when there
    /// are none (an f32 EMA copy, or no update yet), which [`EmaMasters::load`] reads back as
    /// "none".
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if self.masters.is_empty() {
            return Ok(());
        }
        let named: Vec<(String, Tensor)> =
            self.masters.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        Tensor::write_safetensors(&named, path)
            .with_context(|| format!("cannot write EMA masters {}", path.display()))
    }

    /// Restores what [`EmaMasters::save`] wrote (no file = no masters), on `ema`'s device.
    ///
    /// # Errors
    /// [`CheckpointError::Safetensors`] when the file cannot be read;
    /// [`CheckpointError::Tensor`] for a tensor that is not f32, names no variable of `ema`,
    /// or differs in shape.
    pub fn load(&mut self, path: &Path, ema: &VarStore) -> Result<(), CheckpointError> {
        self.masters.clear();
        if !path.exists() {
            return Ok(());
        }
        let named = Tensor::read_safetensors(path).map_err(|e| CheckpointError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let vars = ema.variables();
        for (name, t) in named {
            let Some(var) = vars.get(&name) else {
                return Err(CheckpointError::tensor(
                    path,
                    &name,
                    "EMA master for unknown variable",
                ));
            };
            if t.kind() != Kind::Float || t.size() != var.size() {
                return Err(CheckpointError::tensor(
                    path,
                    &name,
                    format!(
                        "EMA master {name} is {:?} {:?}, expected Float {:?}",
                        t.kind(),
                        t.size(),
                        var.size()
                    ),
                ));
            }
            self.masters.insert(name, t.to_device(ema.device()));
        }
        Ok(())
    }
}

/// Moves every variable of `ema` towards the same-named variable of `current` without
/// keeping masters: exact for f32 stores (see [`EmaMasters::update`] for lower precisions).
pub fn ema_update(ema: &VarStore, current: &VarStore, decay: f64) -> anyhow::Result<()> {
    EmaMasters::new().update(ema, current, &|_| None, decay)
}

/// Copies every variable of `src` into the same-named variable of `dst` (no sharing).
pub fn copy_weights(dst: &VarStore, src: &VarStore) -> anyhow::Result<()> {
    let theirs = src.variables();
    tch::no_grad(|| {
        for (name, mut d) in dst.variables() {
            let s = theirs
                .get(&name)
                .with_context(|| format!("weight copy: source has no variable {name}"))?;
            d.f_copy_(s)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::optim::AdamW;
    use tch::{Device, nn};

    fn store(vals: &[f32]) -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let w = root.sub("layer").var("w", &[vals.len() as i64], nn::Init::Const(0.0));
        tch::no_grad(|| {
            let mut w = w;
            w.copy_(&Tensor::from_slice(vals));
        });
        let _b = root.sub("layer").var("b", &[1], nn::Init::Const(0.0));
        vs
    }

    fn values(vs: &VarStore, name: &str) -> Vec<f32> {
        let t = vs.variables()[name].to_kind(Kind::Float);
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn ema_hand_computed() {
        // 0.95 * 1 + 0.05 * 3 = 1.1 ; 0.95 * -2 + 0.05 * 2 = -1.8
        let ema = store(&[1.0, -2.0]);
        let cur = store(&[3.0, 2.0]);
        ema_update(&ema, &cur, 0.95).unwrap();
        let got = values(&ema, "layer.w");
        assert!((got[0] - 1.1).abs() < 1e-6 && (got[1] + 1.8).abs() < 1e-6, "{got:?}");
        assert_eq!(values(&cur, "layer.w"), vec![3.0, 2.0]);
        // Decay 0 copies, decay 1 keeps.
        ema_update(&ema, &cur, 1.0).unwrap();
        assert!((values(&ema, "layer.w")[0] - 1.1).abs() < 1e-6);
        ema_update(&ema, &cur, 0.0).unwrap();
        assert_eq!(values(&ema, "layer.w"), vec![3.0, 2.0]);
    }

    #[test]
    fn mismatched_stores_are_errors() {
        let a = store(&[1.0, 2.0]);
        let b = store(&[1.0, 2.0, 3.0]);
        assert!(ema_update(&a, &b, 0.9).unwrap_err().to_string().contains("layer.w"));
        let c = VarStore::new(Device::Cpu);
        let _ = c.root().var("other", &[1], nn::Init::Const(0.0));
        assert!(ema_update(&c, &a, 0.9).is_err());
    }

    /// A one-variable store `w` holding `vals` in `kind`.
    fn store_of(vals: &[f32], kind: Kind) -> (VarStore, Tensor) {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[vals.len() as i64], nn::Init::Const(0.0));
        tch::no_grad(|| {
            let mut w = w.shallow_clone();
            w.copy_(&Tensor::from_slice(vals));
            w.set_data(&w.to_kind(kind));
        });
        (vs, w)
    }

    fn f64s(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
    }

    /// One AdamW step of `loss = sum(3 w)` at `lr` (grad 3 everywhere).
    fn adam_step(opt: &mut AdamW, vs: &VarStore, w: &Tensor, lr: f64) {
        AdamW::zero_grad(vs);
        (w.to_kind(Kind::Float) * 3.0).sum(Kind::Float).backward();
        opt.step(vs, lr).unwrap();
    }

    #[test]
    fn bf16_ema_master_moves_by_the_expected_amount() {
        let init = [1.0f32, -0.5, 2.0];
        let decay = 0.95;
        let lr = 1e-4;
        let (cur, w) = store_of(&init, Kind::BFloat16);
        let (ema_vs, ema_w) = store_of(&init, Kind::BFloat16);
        // The old behaviour for comparison: a bf16 EMA lerped toward the bf16 weights.
        let (old_vs, old_w) = store_of(&init, Kind::BFloat16);
        let mut opt = AdamW::new(0.9, 0.95, 0.0);
        let mut ema = EmaMasters::new();
        // Reference in f64: e <- e + (1 - d) (theta - e), theta = the optimiser's f32 master.
        let mut expected: Vec<f64> = init.iter().map(|&x| f64::from(x)).collect();
        for step in 1..=10 {
            adam_step(&mut opt, &cur, &w, lr);
            let theta = f64s(opt.master("w").expect("bf16 weights keep an f32 master"));
            for (e, t) in expected.iter_mut().zip(&theta) {
                *e += (1.0 - decay) * (t - *e);
            }
            ema.update(&ema_vs, &cur, &|n| opt.master(n).map(Tensor::shallow_clone), decay)
                .unwrap();
            ema_update(&old_vs, &cur, decay).unwrap();
            let master = f64s(ema.master("w").unwrap());
            for (i, (m, e)) in master.iter().zip(&expected).enumerate() {
                // f32 rounding of each lerp: a few ulps of values ~1.
                assert!((m - e).abs() < 1e-6, "step {step} [{i}]: master {m}, expected {e}");
            }
            if step == 1 {
                // One step moved theta by lr, so the master moved by (1 - d) lr = 5e-6.
                let moved: Vec<f64> =
                    master.iter().zip(&init).map(|(m, x)| f64::from(*x) - m).collect();
                for m in moved {
                    assert!((m - (1.0 - decay) * lr).abs() < 2e-7, "{m}");
                }
            }
        }
        // 10 steps of 1e-4: theta moved by 1e-3 (under half of bf16's spacing at these
        // values) and the master by ~2.4e-4, but the bf16 weights and the old bf16 EMA are
        // still exactly where they started.
        let master = f64s(ema.master("w").unwrap());
        assert!(master.iter().zip(&init).all(|(m, x)| (f64::from(*x) - m) > 1e-4), "{master:?}");
        assert_eq!(f64s(&w), init.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        assert_eq!(f64s(&old_w), init.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        // The EMA model's variable is the master cast to its dtype.
        assert_eq!(ema_w.kind(), Kind::BFloat16);
        assert_eq!(f64s(&ema_w), f64s(&ema.master("w").unwrap().to_kind(Kind::BFloat16)));
    }

    #[test]
    fn f32_ema_keeps_no_master_and_is_unchanged() {
        let (cur, _) = store_of(&[3.0, 2.0], Kind::Float);
        let (a, aw) = store_of(&[1.0, -2.0], Kind::Float);
        let (_b, bw) = store_of(&[1.0, -2.0], Kind::Float);
        let mut ema = EmaMasters::new();
        for _ in 0..3 {
            ema.update(&a, &cur, &|_| None, 0.95).unwrap();
            // The plain in-place lerp, as every f32 run did before masters existed.
            tch::no_grad(|| {
                let _ = bw.shallow_clone().lerp_(&cur.variables()["w"], 1.0 - 0.95);
            });
        }
        assert!(ema.is_empty());
        assert_eq!(f64s(&aw), f64s(&bw), "bit-identical to the in-place f32 lerp");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ema.safetensors");
        ema.save(&file).unwrap();
        assert!(!file.exists());
    }

    #[test]
    fn masters_resume_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ema-master.safetensors");
        let init = [1.0f32, 0.25];
        let (cur, w) = store_of(&init, Kind::BFloat16);
        let (ema_vs, ema_w) = store_of(&init, Kind::BFloat16);
        let mut opt = AdamW::new(0.9, 0.95, 0.0);
        let mut ema = EmaMasters::new();
        let step = |opt: &mut AdamW, ema: &mut EmaMasters, ema_vs: &VarStore| {
            adam_step(opt, &cur, &w, 1e-4);
            ema.update(ema_vs, &cur, &|n| opt.master(n).map(Tensor::shallow_clone), 0.9).unwrap();
        };
        step(&mut opt, &mut ema, &ema_vs);
        ema.save(&file).unwrap();
        let (resumed_vs, resumed_w) = store_of(&init, Kind::BFloat16);
        tch::no_grad(|| resumed_w.shallow_clone().copy_(&ema_w));
        let mut resumed = EmaMasters::new();
        resumed.load(&file, &resumed_vs).unwrap();
        // The uninterrupted run takes step 2; the resumed copy takes the same EMA update
        // toward the same f32 weights.
        step(&mut opt, &mut ema, &ema_vs);
        resumed
            .update(&resumed_vs, &cur, &|n| opt.master(n).map(Tensor::shallow_clone), 0.9)
            .unwrap();
        let a = f64s(ema.master("w").unwrap());
        let b = f64s(resumed.master("w").unwrap());
        assert_eq!(a, b, "resumed master equals the uninterrupted one bit for bit");
        assert_eq!(f64s(&ema_w), f64s(&resumed_w));

        // Bad files are precise errors.
        let (other, _) = store_of(&[1.0], Kind::BFloat16);
        let err = EmaMasters::new().load(&file, &other).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Tensor { path, tensor, .. }
                if path == &file && tensor == "w"),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(err.contains("EMA master w") && err.contains("[1]"), "{err}");
        // No file: no masters (an f32 copy, or a checkpoint before the first update).
        let mut none = EmaMasters::new();
        none.load(&dir.path().join("absent.safetensors"), &ema_vs).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn copy_is_deep() {
        let a = store(&[1.0, 2.0]);
        let b = store(&[5.0, 6.0]);
        copy_weights(&a, &b).unwrap();
        assert_eq!(values(&a, "layer.w"), vec![5.0, 6.0]);
        ema_update(&b, &store(&[0.0, 0.0]), 0.5).unwrap();
        assert_eq!(values(&a, "layer.w"), vec![5.0, 6.0]);
    }
}
