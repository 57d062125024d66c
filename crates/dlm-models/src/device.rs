//! Where a model computes: `cpu`, `cuda` or `cuda:N`, as the CLI's `--device` and a run
//! config's `model.device` name it. CUDA needs a build with the `cuda` feature
//! (`cargo build --release --features cuda`, see scripts/build-cuda.sh).

use crate::error::{ModelError, Result};
use candle_core::Device;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Opens the device `spec` names: `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device> {
    let invalid = |message: String| ModelError::Device {
        spec: spec.to_string(),
        message,
    };
    let ordinal = match spec {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| invalid("expected cpu, cuda or cuda:N (N a device number)".into()))?,
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(invalid(
            "this dlm was built without CUDA support; rebuild with `--features cuda` (scripts/build-cuda.sh)".into(),
        ));
    }
    Device::new_cuda(ordinal)
        .map_err(|e| invalid(format!("cannot open CUDA device {ordinal}: {e}")))
}

/// The device the environment variable `var` names (`cpu` when it is unset): how the
/// benchmarks (`DEVICE`) and the golden tests (`DLM_TEST_DEVICE`) are pointed at a GPU.
/// Each spec is opened once per process and handed out again after that: every
/// `Device::new_cuda` is a device of its own to candle, and tensors on two of them cannot
/// meet in one op.
pub fn device_from_env(var: &str) -> Result<Device> {
    static OPENED: Mutex<BTreeMap<String, Device>> = Mutex::new(BTreeMap::new());
    let Ok(spec) = std::env::var(var) else { return Ok(Device::Cpu) };
    let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(device) = opened.get(&spec) {
        return Ok(device.clone());
    }
    let device = parse_device(&spec).map_err(|e| ModelError::Device {
        spec: spec.clone(),
        message: format!("from the environment variable {var}: {e}"),
    })?;
    opened.insert(spec, device.clone());
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_cpu() {
        assert!(parse_device("cpu").unwrap().is_cpu());
    }

    #[test]
    fn environment_devices_default_to_the_cpu_and_name_the_variable() {
        assert!(device_from_env("DLM_TEST_UNSET_DEVICE_VARIABLE").unwrap().is_cpu());
        // SAFETY: this variable is read by this test alone.
        unsafe { std::env::set_var("DLM_TEST_BAD_DEVICE_VARIABLE", "gpu") };
        let err = device_from_env("DLM_TEST_BAD_DEVICE_VARIABLE").unwrap_err().to_string();
        assert!(err.contains("DLM_TEST_BAD_DEVICE_VARIABLE") && err.contains("expected cpu, cuda or cuda:N"), "{err}");
    }

    #[test]
    fn unknown_names_are_refused_with_the_accepted_forms() {
        for spec in ["gpu", "cuda:", "cuda:x", "CPU", "cuda:-1", "metal"] {
            let err = parse_device(spec).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{spec:?}")) && err.contains("expected cpu, cuda or cuda:N"),
                "{err}"
            );
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        for spec in ["cuda", "cuda:1"] {
            let err = parse_device(spec).unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
