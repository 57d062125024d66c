//! Reading tensors from a HuggingFace model directory: `model.safetensors`, sharded
//! safetensors (`model.safetensors.index.json`), or a PyTorch zip `pytorch_model.bin`.
//! Tensors are looked up by HF name; [`Weights::find`] tries the family prefixes and the
//! legacy LayerNorm names (`gamma`/`beta`) and reports every name it tried.

use crate::error::{ModelError, Result};
use candle_core::{Device, Tensor};
use candle_core::pickle::PthTensors;
use candle_core::safetensors::MmapedSafetensors;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

enum Store {
    Safetensors(MmapedSafetensors),
    Pth(PthTensors),
    /// Tensors already in memory (e.g. a model being rebuilt with a pruned vocabulary).
    Memory(HashMap<String, Tensor>),
}

/// The tensors of one checkpoint, with each tensor's shape and the file that holds it.
pub struct Weights {
    store: Store,
    shapes: HashMap<String, (Vec<usize>, PathBuf)>,
    /// Storage dtype of each tensor name, as written in the file (e.g. "F32", "BF16").
    dtypes: HashMap<String, String>,
}

impl Weights {
    /// Opens the weights of `dir`, preferring safetensors over PyTorch pickles.
    pub fn open(dir: &Path) -> Result<Weights> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let pth = dir.join("pytorch_model.bin");
        if single.is_file() {
            Self::safetensors(vec![single])
        } else if index.is_file() {
            Self::safetensors(shards(&index)?)
        } else if pth.is_file() {
            Self::pth(pth)
        } else {
            Err(ModelError::NoWeights { dir: dir.into() })
        }
    }

    fn safetensors(files: Vec<PathBuf>) -> Result<Weights> {
        let (mut shapes, mut dtypes) = (HashMap::new(), HashMap::new());
        for file in &files {
            // SAFETY (here and below): files are mapped read-only; a checkpoint rewritten
            // while mapped is outside what we support (as in candle and transformers).
            // Deserializing checks the header and every tensor's bounds (truncation).
            let one = unsafe { MmapedSafetensors::new(file) }.map_err(|e| corrupt(file, e))?;
            for (name, view) in one.tensors() {
                dtypes.insert(name.clone(), format!("{:?}", view.dtype()));
                shapes.insert(name, (view.shape().to_vec(), file.clone()));
            }
        }
        let store = unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| corrupt(&files[0], e))?;
        Ok(Weights { store: Store::Safetensors(store), shapes, dtypes })
    }

    /// In-memory tensors, reported under `label` in errors.
    pub fn from_tensors(label: &Path, tensors: HashMap<String, Tensor>) -> Weights {
        let shapes = tensors.iter().map(|(n, t)| (n.clone(), (t.dims().to_vec(), label.to_path_buf()))).collect();
        let dtypes = tensors.iter().map(|(n, t)| (n.clone(), format!("{:?}", t.dtype()).to_uppercase())).collect();
        Weights { store: Store::Memory(tensors), shapes, dtypes }
    }

    fn pth(path: PathBuf) -> Result<Weights> {
        let store = PthTensors::new(&path, None).map_err(|e| corrupt(&path, e))?;
        let infos = store.tensor_infos();
        let shapes = infos.iter().map(|(n, i)| (n.clone(), (i.layout.dims().to_vec(), path.clone()))).collect();
        let dtypes = infos.iter().map(|(n, i)| (n.clone(), format!("{:?}", i.dtype).to_uppercase())).collect();
        Ok(Weights { store: Store::Pth(store), shapes, dtypes })
    }

    /// The storage dtype of `name` in the file, e.g. "F32".
    pub fn dtype_of(&self, name: &str) -> Option<&str> {
        self.dtypes.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }

    /// The first of `candidates` present in the checkpoint.
    pub fn find<'a>(&self, candidates: &'a [String]) -> Option<&'a str> {
        candidates.iter().map(String::as_str).find(|n| self.contains(n))
    }

    /// The file holding `name`, or the first weights file when `name` is absent.
    pub fn path_of(&self, name: &str) -> &Path {
        match self.shapes.get(name) {
            Some((_, p)) => p,
            None => self.shapes.values().next().map(|(_, p)| p.as_path()).unwrap_or(Path::new("")),
        }
    }

    /// Loads the first present candidate and checks its shape against `expected`.
    pub fn load(&self, candidates: &[String], expected: &[usize], device: &Device) -> Result<Tensor> {
        let name = self.find(candidates).ok_or_else(|| ModelError::MissingTensor {
            path: self.path_of("").into(),
            name: candidates.first().cloned().unwrap_or_default(),
            tried: candidates.join(", "),
        })?;
        let (shape, path) = &self.shapes[name];
        if shape.as_slice() != expected {
            return Err(ModelError::Shape {
                path: path.clone(),
                name: name.into(),
                expected: expected.to_vec(),
                found: shape.clone(),
            });
        }
        let tensor = match &self.store {
            Store::Safetensors(st) => st.load(name, device),
            Store::Memory(map) => map
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("tensor {name} vanished")))
                .and_then(|t| t.to_device(device)),
            Store::Pth(pth) => pth.get(name).and_then(|t| {
                t.ok_or_else(|| candle_core::Error::Msg(format!("tensor {name} vanished")))?
                    .to_device(device)
            }),
        };
        tensor.map_err(|e| corrupt(path, e))
    }
}

/// Every tensor of a PyTorch pickle (a `torch.save` zip such as `pytorch_model.bin`), or of
/// the dict stored under `key` in it (DeepSpeed's `mp_rank_00_model_states.pt` keeps the
/// state dict under `"module"`). Non-tensor entries are skipped.
pub fn read_torch_state_dict(path: &Path, key: Option<&str>) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::pickle::read_all_with_key(path, key).map_err(|e| corrupt(path, e))?;
    Ok(tensors.into_iter().collect())
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::CorruptWeights { path: path.into(), message: e.to_string() }
}

/// The distinct shard files named by a `model.safetensors.index.json`, in first-use order.
fn shards(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|source| ModelError::Io { path: index.into(), source })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| corrupt(index, e))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| corrupt(index, "missing \"weight_map\" object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for (tensor, value) in map {
        let file = value.as_str().ok_or_else(|| corrupt(index, "weight_map values must be file names"))?;
        let path = dir.join(file);
        if !files.contains(&path) {
            if !path.is_file() {
                return Err(ModelError::Invalid {
                    path: index.into(),
                    message: format!(
                        "weight_map entry {tensor:?} names shard {file:?}, which does not exist (expected {})",
                        path.display()
                    ),
                });
            }
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(corrupt(index, "weight_map is empty"));
    }
    Ok(files)
}
