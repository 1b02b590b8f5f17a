//! The "mirror descent" copy: after every step `ema <- d * ema + (1 - d) * theta`, variable
//! by variable (matched by name). The EMA model samples the rollouts and is the DPO/IPO
//! reference, which keeps the game's players from chasing each other's latest move.

use anyhow::{Context, bail};
use tch::nn::VarStore;

/// Moves every variable of `ema` towards the same-named variable of `current`.
pub fn ema_update(ema: &VarStore, current: &VarStore, decay: f64) -> anyhow::Result<()> {
    let theirs = current.variables();
    let ours = ema.variables();
    if ours.len() != theirs.len() {
        bail!(
            "EMA update: {} variables in the EMA copy, {} in the model",
            ours.len(),
            theirs.len()
        );
    }
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
            // lerp: e + w (t - e) = (1 - w) e + w t with w = 1 - d. An f32 EMA copy of a
            // bf16/f16 model (LoRA adapters) reads the weights in its own precision.
            if t.kind() == e.kind() {
                let _ = e.lerp_(t, 1.0 - decay);
            } else {
                let _ = e.lerp_(&t.to_kind(e.kind()), 1.0 - decay);
            }
        }
        Ok(())
    })
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
    use tch::{Device, Kind, Tensor, nn};

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
