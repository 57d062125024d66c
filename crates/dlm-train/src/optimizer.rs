//! AdamW as fairseq's `Adam` computes it (SPEC §7: betas 0.9/0.98, weight decay 0.01),
//! with every state tensor a plain f32 tensor that a checkpoint can save and restore:
//!
//! ```text
//! m ← β1·m + (1-β1)·g              v ← β2·v + (1-β2)·g²
//! p ← p − lr·wd·p                   (decoupled weight decay, every parameter)
//! p ← p − lr·sqrt(1-β2^t)/(1-β1^t) · m / (sqrt(v) + ε)
//! ```
//!
//! When the model computes in bf16, `p` is an f32 *master* copy kept here and the model's
//! variable receives `p` rounded to bf16 after each update. Gradients arrive in the
//! model's dtype and are upcast; parameters without a gradient are left untouched. Each
//! parameter's state is one flat f32 tensor `[m; v; master?]`, updated on the CPU in
//! place together with the parameter in one pass (`dlm_models::adamw_step`); on other
//! devices by the same maths in candle ops.
//! [`clip_grad_norm`] scales gradients to a maximum global L2 norm.

use crate::error::{Result, TrainError};
use candle_core::{DType, Tensor, Var};
use dlm_models::{AdamWStep, adamw_step};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
}

struct Slot {
    name: String,
    var: Var,
    /// `[2, n]` f32 (m, v) for an f32 variable; `[3, n]` (m, v, f32 master copy of the
    /// parameter) otherwise.
    state: Tensor,
}

impl Slot {
    fn has_master(&self) -> bool {
        self.state.dim(0).is_ok_and(|k| k == 3)
    }

    /// Row `i` of the state in the parameter's shape.
    fn row(&self, i: usize) -> Result<Tensor> {
        Ok(self.state.get(i)?.reshape(self.var.shape())?)
    }
}

impl AdamWConfig {
    /// The coefficients of update `t` (1-based) at learning rate `lr`.
    pub fn coefficients(&self, t: u64, lr: f64) -> AdamStep {
        let [b1, b2] = self.betas;
        let t = t as i32;
        AdamStep {
            betas: self.betas,
            eps: self.eps,
            step_size: lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t)),
            decay: 1.0 - lr * self.weight_decay,
        }
    }
}

/// One update's coefficients, applied element-wise to any slice of the parameters (a
/// whole variable here, a ZeRO shard's piece in [`crate::zero`]).
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    betas: [f64; 2],
    eps: f64,
    step_size: f64,
    decay: f64,
}

impl AdamStep {
    /// Updates `param` (f32 or bf16) and its `state` (`[2, n]` m, v; `[3, n]` with the f32
    /// master for a bf16 `param`) from `grad`. On the CPU both are updated in place and
    /// `None` is returned; on other devices the same maths runs in candle ops and the new
    /// state and f32 weights `[n]` are returned for the caller to store.
    pub fn apply(&self, param: &Tensor, state: &Tensor, grad: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        let [b1, b2] = self.betas;
        if param.device().is_cpu() {
            let step = AdamWStep {
                beta1: b1 as f32,
                beta2: b2 as f32,
                eps: self.eps as f32,
                step_size: self.step_size as f32,
                decay: self.decay as f32,
            };
            adamw_step(param, state, grad, step)?;
            return Ok(None);
        }
        let g = grad.to_dtype(DType::F32)?.flatten_all()?;
        let (m, v) = (state.get(0)?, state.get(1)?);
        let m = ((m * b1)? + (&g * (1.0 - b1))?)?;
        let v = ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
        let master = state.dim(0)? == 3;
        let p = match master {
            true => state.get(2)?,
            false => param.flatten_all()?,
        };
        let update = (&m / (v.sqrt()? + self.eps)?)?;
        let p = ((p * self.decay)? - (update * self.step_size)?)?.detach();
        let rows = if master { vec![m, v, p.clone()] } else { vec![m, v] };
        Ok(Some((Tensor::stack(&rows, 0)?, p)))
    }
}

pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
    /// Updates applied so far (t of the bias corrections).
    steps: u64,
}

impl AdamW {
    /// One slot per named variable, moments at zero.
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<AdamW> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let t = var.as_tensor();
                let n = t.elem_count();
                let zeros = Tensor::zeros((2, n), DType::F32, t.device())?;
                let state = if t.dtype() == DType::F32 {
                    zeros
                } else {
                    Tensor::cat(&[zeros, t.to_dtype(DType::F32)?.reshape((1, n))?], 0)?
                };
                Ok(Slot { name, var, state })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            cfg,
            slots,
            steps: 0,
        })
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The variables, in slot order (gradients are passed in this order).
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.slots.iter().map(|s| &s.var)
    }

    /// Applies one update with learning rate `lr`; `grads[i]` belongs to the i-th variable.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        if grads.len() != self.slots.len() {
            return Err(TrainError::Invalid(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.slots.len()
            )));
        }
        self.steps += 1;
        let coef = self.cfg.coefficients(self.steps, lr);
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            let Some(g) = grad else { continue };
            if let Some((state, p)) = coef.apply(slot.var.as_tensor(), &slot.state, g)? {
                slot.var.set(&p.reshape(slot.var.shape())?.to_dtype(slot.var.dtype())?)?;
                slot.state = state;
            }
        }
        Ok(())
    }

    /// Bytes of optimizer state held: the moments and the f32 masters.
    pub fn state_bytes(&self) -> usize {
        self.slots.iter().map(|s| 4 * s.state.elem_count()).sum()
    }

    /// Every state tensor by name: `exp_avg.NAME`, `exp_avg_sq.NAME` and, for a model not
    /// in f32, `master.NAME`.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(3 * self.slots.len());
        for s in &self.slots {
            let kinds: &[&str] = if s.has_master() { &["exp_avg", "exp_avg_sq", "master"] } else { &["exp_avg", "exp_avg_sq"] };
            for (i, kind) in kinds.iter().enumerate() {
                // A copy: the state itself keeps changing in place.
                out.push((format!("{kind}.{}", s.name), s.row(i)?.copy()?));
            }
        }
        Ok(out)
    }

    /// Restores the state written by [`AdamW::state_tensors`] after `steps` updates; the
    /// master copies (if any) are written back into the variables.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        for s in &mut self.slots {
            let get = |kind: &str| -> Result<Tensor> {
                let key = format!("{kind}.{}", s.name);
                let t = tensors.get(&key).ok_or_else(|| {
                    TrainError::Invalid(format!("optimizer state has no tensor {key}"))
                })?;
                if t.dims() != s.var.dims() {
                    return Err(TrainError::Invalid(format!(
                        "optimizer state {key} has shape {:?}, the parameter {:?}",
                        t.dims(),
                        s.var.dims()
                    )));
                }
                Ok(t.to_dtype(DType::F32)?.to_device(s.var.device())?)
            };
            let mut rows = vec![get("exp_avg")?.flatten_all()?, get("exp_avg_sq")?.flatten_all()?];
            if s.has_master() {
                let master = get("master")?;
                s.var.set(&master.to_dtype(s.var.dtype())?)?;
                rows.push(master.flatten_all()?);
            }
            s.state = Tensor::stack(&rows, 0)?;
        }
        self.steps = steps;
        Ok(())
    }
}

/// Global L2 norm of `grads` (f32); when `max_norm > 0` and the norm exceeds it, every
/// gradient is scaled by `max_norm / (norm + 1e-6)` (torch's `clip_grad_norm_`). Returns
/// the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter().flatten() {
        sq += g
            .to_dtype(DType::F32)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
    }
    let norm = sq.sqrt();
    if let Some(scale) = clip_scale(norm, max_norm) {
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

/// The factor that brings gradients of global norm `norm` down to `max_norm`, if they
/// exceed it (`max_norm` 0: never).
pub fn clip_scale(norm: f64, max_norm: f64) -> Option<f64> {
    (max_norm > 0.0 && norm > max_norm).then(|| max_norm / (norm + 1e-6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(values: &[f32], dtype: DType) -> Var {
        Var::from_tensor(
            &Tensor::new(values, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap()
    }

    const CFG: AdamWConfig = AdamWConfig {
        betas: [0.9, 0.98],
        eps: 1e-8,
        weight_decay: 0.01,
    };

    #[test]
    fn first_step_by_hand() {
        // t = 1: m = 0.1·g, v = 0.02·g², step = lr·sqrt(0.02)/0.1;
        // m/(sqrt(v)+ε) = 0.1·g/(sqrt(0.02)·|g|) ≈ sign(g)/sqrt(0.02)·0.1 → update = lr·sign(g).
        // p = 1 − 0.1·0.01·1 − 0.1·1 = 0.899 for g > 0; p = 2·0.999 + 0.1 = 2.098 for g < 0.
        let v = var(&[1.0, 2.0], DType::F32);
        let mut opt = AdamW::new(vec![("w".into(), v.clone())], CFG).unwrap();
        let g = Tensor::new(&[0.5f32, -3.0], &Device::Cpu).unwrap();
        opt.step(&[Some(g)], 0.1).unwrap();
        let p = v.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (p[0] - 0.899).abs() < 1e-5 && (p[1] - 2.098).abs() < 1e-5,
            "{p:?}"
        );
    }

    #[test]
    fn matches_a_scalar_reference_over_steps() {
        // A scalar re-implementation of the update, run for 5 steps with changing grads.
        let v = var(&[0.3], DType::F32);
        let mut opt = AdamW::new(vec![("w".into(), v.clone())], CFG).unwrap();
        let (mut p, mut m, mut s) = (0.3f64, 0.0f64, 0.0f64);
        for t in 1..=5 {
            let g = 0.1 * t as f64 - 0.25;
            opt.step(
                &[Some(Tensor::new(&[g as f32], &Device::Cpu).unwrap())],
                0.01,
            )
            .unwrap();
            m = 0.9 * m + 0.1 * g;
            s = 0.98 * s + 0.02 * g * g;
            let step = 0.01 * (1.0 - 0.98f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
            p = p * (1.0 - 0.01 * 0.01) - step * m / (s.sqrt() + 1e-8);
        }
        let got = v.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - p).abs() < 1e-6, "{got} vs {p}");
    }

    #[test]
    fn bf16_keeps_an_f32_master_copy() {
        // A step of 1e-4 is below bf16's resolution at 1.0 (2^-7): the bf16 variable does
        // not move but the master does, and the state round-trips through state_tensors.
        let v = var(&[1.0], DType::BF16);
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            ..CFG
        };
        let mut opt = AdamW::new(vec![("w".into(), v.clone())], cfg).unwrap();
        let g = Tensor::new(&[1.0f32], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        opt.step(&[Some(g)], 1e-4).unwrap();
        assert_eq!(
            v.as_tensor()
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            vec![1.0]
        );
        let state: HashMap<String, Tensor> = opt.state_tensors().unwrap().into_iter().collect();
        let master = state["master.w"].to_vec1::<f32>().unwrap()[0];
        assert!((master - 0.9999).abs() < 1e-6, "{master}");
        let mut fresh = AdamW::new(vec![("w".into(), var(&[5.0], DType::BF16))], cfg).unwrap();
        fresh.load_state(&state, 1).unwrap();
        assert_eq!(
            fresh.state_tensors().unwrap()[2].1.to_vec1::<f32>().unwrap(),
            vec![master]
        );
    }

    #[test]
    fn missing_gradients_leave_parameters_alone() {
        let v = var(&[1.0], DType::F32);
        let mut opt = AdamW::new(vec![("w".into(), v.clone())], CFG).unwrap();
        opt.step(&[None], 0.1).unwrap();
        assert_eq!(v.as_tensor().to_vec1::<f32>().unwrap(), vec![1.0]);
        assert!(opt.step(&[], 0.1).is_err());
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        // |(3, 4)| = 5 → clipped to norm 1: (0.6, 0.8).
        let mut g = vec![
            Some(Tensor::new(&[3.0f32], &Device::Cpu).unwrap()),
            None,
            Some(Tensor::new(&[4.0f32], &Device::Cpu).unwrap()),
        ];
        let norm = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-9);
        let a = g[0].as_ref().unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((a - 0.6).abs() < 1e-5);
        // max_norm 0 = no clipping.
        let mut g = vec![Some(Tensor::new(&[3.0f32], &Device::Cpu).unwrap())];
        clip_grad_norm(&mut g, 0.0).unwrap();
        assert_eq!(g[0].as_ref().unwrap().to_vec1::<f32>().unwrap(), vec![3.0]);
    }
}
