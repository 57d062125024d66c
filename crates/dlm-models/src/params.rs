//! Where a backbone's tensors come from and where they are recorded: every parameter is
//! registered under its HuggingFace name, as a plain tensor for inference or as a `Var`
//! (a tensor that collects gradients) for training, so the optimizer and the checkpoint
//! writer see exactly the tensors the forward pass uses.

use crate::error::Result;
use crate::weights::Weights;
use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::cell::{Cell, RefCell};

/// Named parameters of a model, in the order they were created.
#[derive(Default)]
pub struct Params {
    entries: Vec<(String, Tensor)>,
    vars: Vec<(String, Var)>,
}

impl Params {
    /// (HF name, tensor) for every parameter, e.g. for saving a checkpoint.
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.entries
    }
    /// Trainable parameters; empty unless the model was loaded with `trainable`.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }
    /// Number of scalars over all parameters.
    pub fn count(&self) -> usize {
        self.entries.iter().map(|(_, t)| t.elem_count()).sum()
    }
}

/// How fresh parameters are initialised: as HF's `_init_weights` for BERT-family models
/// (normal) and ModernBERT (normal truncated at ± `cutoff`·std, std per layer role).
pub(crate) struct Init {
    rng: RefCell<ChaCha8Rng>,
    /// `initializer_range` of the config.
    pub std: f64,
    /// Padding id, whose embedding rows HF zeroes (`padding_idx`).
    pub pad: u32,
    /// Truncate the normal at ± `cutoff` standard deviations.
    cutoff: Option<f64>,
}

impl Init {
    pub fn new(seed: u64, std: f64, pad: u32) -> Init {
        Init { rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)), std, pad, cutoff: None }
    }

    /// Draws from a normal truncated at ± `cutoff` standard deviations (`None`: untruncated).
    pub fn truncated(self, cutoff: Option<f64>) -> Init {
        Init { cutoff, ..self }
    }

    /// LayerNorm weights 1; biases 0; other matrices normal(0, std) (redrawn outside the
    /// cutoff), with the padding row of the word (and RoBERTa position) embeddings zeroed.
    fn tensor(&self, name: &str, shape: &[usize], std: f64, device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let is_norm = name.contains("LayerNorm") || name.contains("layer_norm") || name.contains("norm.") || name.ends_with("ln_f.weight");
        let values: Vec<f32> = if is_norm && name.ends_with(".weight") {
            vec![1.0; n]
        } else if name.ends_with("bias") {
            vec![0.0; n]
        } else {
            let normal = Normal::new(0.0, std as f32).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let bound = self.cutoff.map_or(f32::INFINITY, |c| (c * std) as f32);
            let mut rng = self.rng.borrow_mut();
            let mut draw = || loop {
                let x: f32 = normal.sample(&mut *rng);
                if x.abs() <= bound {
                    return x;
                }
            };
            let mut v: Vec<f32> = (0..n).map(|_| draw()).collect();
            let padded = name.ends_with("word_embeddings.weight")
                || (name.starts_with("roberta.") && name.ends_with("position_embeddings.weight"));
            if padded && shape.len() == 2 && (self.pad as usize) < shape[0] {
                let w = shape[1];
                v[self.pad as usize * w..(self.pad as usize + 1) * w].fill(0.0);
            }
            v
        };
        Ok(Tensor::from_vec(values, shape, device)?)
    }
}

/// Builds parameters from a checkpoint or freshly initialised, registering each.
pub(crate) struct ParamBuilder<'a> {
    weights: Option<&'a Weights>,
    init: Init,
    /// When set, parameters are initialised even if the checkpoint has them.
    fresh: Cell<bool>,
    pub dtype: DType,
    pub device: Device,
    pub trainable: bool,
    params: RefCell<Params>,
}

impl<'a> ParamBuilder<'a> {
    pub fn new(weights: Option<&'a Weights>, init: Init, dtype: DType, device: Device, trainable: bool) -> Self {
        let fresh = Cell::new(weights.is_none());
        ParamBuilder { weights, init, fresh, dtype, device, trainable, params: RefCell::default() }
    }

    /// `initializer_range` of the config.
    pub fn std(&self) -> f64 {
        self.init.std
    }

    /// Initialise (rather than load) the parameters built from now on.
    pub fn initialise_from_here(&self) {
        self.fresh.set(true);
    }

    /// Whether the checkpoint holds one of `candidates`.
    pub fn has(&self, candidates: &[String]) -> bool {
        self.weights.is_some_and(|w| w.find(candidates).is_some())
    }

    /// Loads the first present of `candidates` (HF names), or initialises the parameter,
    /// and registers it as `name`.
    pub fn load(&self, name: &str, candidates: &[String], shape: &[usize]) -> Result<Tensor> {
        self.load_with_std(name, candidates, shape, self.init.std)
    }

    /// [`ParamBuilder::load`], initialising a fresh matrix with standard deviation `std`.
    pub fn load_with_std(&self, name: &str, candidates: &[String], shape: &[usize], std: f64) -> Result<Tensor> {
        self.obtain(name, candidates, shape, std, false)
    }

    /// [`ParamBuilder::load`] for a linear layer's weight `[out, in]`. In an f32 inference
    /// model on the CPU it is kept column-major (the same logical tensor over `[in, out]`
    /// contiguous storage), the layout `kernels::Linear` multiplies fastest; trainable,
    /// bf16 and non-CPU weights keep the stored layout.
    pub fn load_linear(&self, name: &str, candidates: &[String], shape: &[usize]) -> Result<Tensor> {
        let column_major = !self.trainable && self.dtype == DType::F32 && self.device.is_cpu();
        self.obtain(name, candidates, shape, self.init.std, column_major)
    }

    fn obtain(&self, name: &str, candidates: &[String], shape: &[usize], std: f64, column_major: bool) -> Result<Tensor> {
        let t = match self.weights {
            Some(w) if !self.fresh.get() => w.load(candidates, shape, &self.device)?,
            _ => self.init.tensor(name, shape, std, &self.device)?,
        };
        let t = t.to_dtype(self.dtype)?;
        let t = if column_major { t.t()?.contiguous()?.t()? } else { t };
        let t = if self.trainable {
            let var = Var::from_tensor(&t)?;
            let t = var.as_tensor().clone();
            self.params.borrow_mut().vars.push((name.into(), var));
            t
        } else {
            t
        };
        self.params.borrow_mut().entries.push((name.into(), t.clone()));
        Ok(t)
    }

    pub fn finish(self) -> Params {
        self.params.into_inner()
    }
}
