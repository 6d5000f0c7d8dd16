//! Device and dtype names as users write them ("cpu", "cuda:1", "bfloat16") and what this build
//! of candle can provide.

use candle_core::{DType, Device};

use crate::error::{invalid_input, Error, Result};

/// Parses "cpu", "cuda", "cuda:N", "metal" or "metal:N" into a candle device.
pub fn parse_device(name: &str) -> Result<Device> {
    let (kind, ordinal) = match name.split_once(':') {
        Some((kind, ordinal)) => match ordinal.parse::<usize>() {
            Ok(ordinal) => (kind, ordinal),
            Err(_) => {
                return invalid_input!("invalid device {name:?}: the ordinal must be a number")
            }
        },
        None => (name, 0),
    };
    match kind {
        "cpu" if ordinal == 0 => Ok(Device::Cpu),
        "cuda" => cuda_device(ordinal),
        "metal" => metal_device(ordinal),
        _ => invalid_input!(
            "invalid device {name:?}: expected \"cpu\", \"cuda\", \"cuda:N\" or \"metal\""
        ),
    }
}

fn cuda_device(ordinal: usize) -> Result<Device> {
    if !candle_core::utils::cuda_is_available() {
        return Err(Error::DeviceUnavailable(
            "this build of candle_port has no CUDA support; build it with `--features cuda`".into(),
        ));
    }
    open_gpu("CUDA", ordinal, Device::new_cuda)
}

/// Opens a GPU. cudarc loads libcuda at run time and panics when it is absent (a CUDA build on
/// a machine without the NVIDIA driver); that becomes an error here, not a panic in Python.
fn open_gpu(
    kind: &str,
    ordinal: usize,
    open: fn(usize) -> candle_core::Result<Device>,
) -> Result<Device> {
    match std::panic::catch_unwind(|| open(ordinal)) {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(Error::DeviceUnavailable(format!(
            "cannot open {kind} device {ordinal}: {e}"
        ))),
        Err(_) => Err(Error::DeviceUnavailable(format!(
            "cannot open {kind} device {ordinal}: the {kind} driver library could not be loaded"
        ))),
    }
}

fn metal_device(ordinal: usize) -> Result<Device> {
    if !candle_core::utils::metal_is_available() {
        return Err(Error::DeviceUnavailable(
            "this build of candle_port has no Metal support; build it on macOS with `--features metal`"
                .into(),
        ));
    }
    open_gpu("Metal", ordinal, Device::new_metal)
}

/// Parses transformers' dtype names: "float32", "float16", "bfloat16".
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name {
        "float32" | "fp32" => Ok(DType::F32),
        "float16" | "fp16" | "half" => Ok(DType::F16),
        "bfloat16" | "bf16" => Ok(DType::BF16),
        _ => invalid_input!(
            "invalid dtype {name:?}: expected \"float32\", \"float16\" or \"bfloat16\""
        ),
    }
}

/// The dtype's lowest finite value (transformers' `torch.finfo(dtype).min`), for additive
/// attention masks that stay finite in half precision.
pub fn lowest_finite(dtype: DType) -> f32 {
    match dtype {
        DType::F16 => half::f16::MIN.to_f32(),
        DType::BF16 => half::bf16::MIN.to_f32(),
        _ => f32::MIN,
    }
}

/// The devices this build can use on this machine, e.g. `["cpu", "cuda:0"]`.
pub fn available_devices() -> Vec<String> {
    let mut devices = vec!["cpu".to_string()];
    if candle_core::utils::cuda_is_available() {
        devices.extend(
            (0..64)
                .take_while(|&i| open_gpu("CUDA", i, Device::new_cuda).is_ok())
                .map(|i| format!("cuda:{i}")),
        );
    }
    if candle_core::utils::metal_is_available() && open_gpu("Metal", 0, Device::new_metal).is_ok() {
        devices.push("metal:0".to_string());
    }
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_dtypes() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(matches!(parse_device("gpu"), Err(Error::InvalidInput(_))));
        assert!(matches!(
            parse_device("cuda:x"),
            Err(Error::InvalidInput(_))
        ));
        assert_eq!(parse_dtype("bfloat16").unwrap(), DType::BF16);
        assert!(matches!(parse_dtype("int8"), Err(Error::InvalidInput(_))));
        assert_eq!(available_devices()[0], "cpu");
    }
}
