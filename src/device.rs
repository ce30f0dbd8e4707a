//! Where models compute: the one place a device name (`--device`, `$STORYTOOL_DEVICE`, `device.select`)
//! becomes burn devices.
//!
//! The rest of the crate never names a backend: loaders and trainers take a [`Device`], and models put
//! their tensors on the device of their own weights. Artifacts stay device-neutral (weights are saved as
//! plain f32/f16 values), so a model trained on a GPU generates on the CPU and back.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A compute backend a storytool binary may be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// burn's `flex` backend: always built.
    Cpu,
    /// NVIDIA GPUs through CubeCL (`--features cuda`).
    Cuda,
    /// Any GPU wgpu reaches: Vulkan, Metal, DirectX (`--features wgpu`).
    Wgpu,
    /// burn's ndarray CPU backend (`--features ndarray`), for tests: it runs the models through burn's tensor
    /// operations, the path every GPU takes, so that the CPU can check that path and the device seam.
    NdArray,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
            Backend::Wgpu => "wgpu",
            Backend::NdArray => "ndarray",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn is_built(self) -> bool {
        match self {
            Backend::Cpu => true,
            Backend::Cuda => cfg!(feature = "cuda"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::NdArray => cfg!(feature = "ndarray"),
        }
    }
}

/// One device by name: `cpu`, `cuda`, `cuda:1`, `wgpu`, `wgpu:0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceName {
    pub backend: Backend,
    /// The GPU's index among its backend's devices; `None` is the backend's default (CUDA device 0, the
    /// adapter wgpu prefers). The CPU has no index.
    pub index: Option<usize>,
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "{}:{index}", self.backend.name()),
            None => f.write_str(self.backend.name()),
        }
    }
}

/// The devices a command was asked to compute on: one, or several of one backend for data-parallel
/// training (`cuda:0,cuda:1`). `cpu,cpu` runs two replicas on the CPU: no faster, but it exercises the
/// data-parallel path on any machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    names: Vec<DeviceName>,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec::cpu()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.names.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(","))
    }
}

/// A device name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("`{0}` is not a device: expected cpu, cuda, cuda:N, wgpu or wgpu:N, or a comma-separated list of them")]
    Unknown(String),
    #[error("`{0}` mixes backends: data-parallel training uses devices of one backend")]
    MixedBackends(String),
    #[error("`{0}` names a device twice")]
    Repeated(String),
    #[error(
        "this storytool was built without the {backend} backend, so it cannot compute on `{device}`\n\nhint: rebuild with `cargo build --release --features {backend}`{extra} (README: \"GPU build\"), or pass `--device cpu`",
        backend = .0.backend.name(),
        device = .0,
        extra = if .0.backend == Backend::Cuda { " after `scripts/offline-llvm.sh` where GitHub is unreachable" } else { "" }
    )]
    NotBuilt(DeviceName),
    #[error("{command} computes on one device; `{spec}` names {count}\n\nhint: pass one, e.g. `--device {first}`")]
    OneOnly { command: String, spec: String, count: usize, first: String },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<DeviceSpec, DeviceError> {
        let names = text.split(',').map(|part| parse_name(part.trim(), text)).collect::<Result<Vec<_>, _>>()?;
        let first = names[0].backend;
        if names.iter().any(|name| name.backend != first) {
            return Err(DeviceError::MixedBackends(text.to_string()));
        }
        if !matches!(first, Backend::Cpu | Backend::NdArray) {
            // `cuda` and `cuda:0` are the same GPU.
            let mut indices: Vec<usize> = names.iter().map(|name| name.index.unwrap_or(0)).collect();
            indices.sort_unstable();
            if indices.windows(2).any(|pair| pair[0] == pair[1]) {
                return Err(DeviceError::Repeated(text.to_string()));
            }
        }
        Ok(DeviceSpec { names })
    }
}

fn parse_name(part: &str, whole: &str) -> Result<DeviceName, DeviceError> {
    let unknown = || DeviceError::Unknown(whole.to_string());
    let (backend, index) = match part.split_once(':') {
        Some((backend, index)) => (backend, Some(index.parse::<usize>().map_err(|_| unknown())?)),
        None => (part, None),
    };
    let backend = match backend.to_ascii_lowercase().as_str() {
        "cpu" if index.is_none() => Backend::Cpu,
        "cuda" => Backend::Cuda,
        "wgpu" => Backend::Wgpu,
        "ndarray" if index.is_none() => Backend::NdArray,
        _ => return Err(unknown()),
    };
    Ok(DeviceName { backend, index })
}

impl DeviceSpec {
    /// The CPU (burn's `flex` backend), the default.
    pub fn cpu() -> DeviceSpec {
        DeviceSpec { names: vec![DeviceName { backend: Backend::Cpu, index: None }] }
    }

    pub fn names(&self) -> &[DeviceName] {
        &self.names
    }

    /// The burn devices, in the order named (the first is the main one: it holds the model and the
    /// optimizer); an error if this binary lacks the backend.
    pub fn devices(&self) -> Result<Vec<Device>, DeviceError> {
        self.names.iter().map(|name| device(*name)).collect()
    }

    /// The one device of a command that computes on one (`command` names it in the error).
    pub fn single(&self, command: &str) -> Result<Device, DeviceError> {
        if self.names.len() > 1 {
            return Err(DeviceError::OneOnly {
                command: command.to_string(),
                spec: self.to_string(),
                count: self.names.len(),
                first: self.names[0].to_string(),
            });
        }
        device(self.names[0])
    }
}

/// The burn device for `name`.
pub fn device(name: DeviceName) -> Result<Device, DeviceError> {
    if !name.backend.is_built() {
        return Err(DeviceError::NotBuilt(name));
    }
    Ok(match name.backend {
        Backend::Cpu => Device::flex(),
        #[cfg(feature = "cuda")]
        Backend::Cuda => Device::cuda(name.index.unwrap_or(0)),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => Device::wgpu(match name.index {
            Some(index) => burn::tensor::DeviceKind::DiscreteGpu(index),
            None => burn::tensor::DeviceKind::DefaultDevice,
        }),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // deprecated for users; here it is a second reference backend for tests
        Backend::NdArray => Device::ndarray(),
        #[allow(unreachable_patterns)]
        _ => unreachable!("is_built checked the backend"),
    })
}

/// The device a module's weights live on (the CPU for a module without any): where its inputs must go.
pub fn of_module<M: burn::module::Module>(module: &M) -> Device {
    module.devices().into_iter().next().unwrap_or_else(Device::flex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for text in ["cpu", "cuda", "cuda:1", "cuda:0,cuda:1", "wgpu", "wgpu:0", "cpu,cpu", "ndarray,ndarray"] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap().to_string(), text);
        }
        assert_eq!(" CUDA:2 ".trim().parse::<DeviceSpec>().unwrap().to_string(), "cuda:2");
    }

    #[test]
    fn bad_names_are_errors_that_say_what_is_expected() {
        for text in ["", "tpu", "cuda:x", "cpu:1", "cuda:-1", "cuda,"] {
            let error = text.parse::<DeviceSpec>().unwrap_err();
            assert!(matches!(error, DeviceError::Unknown(_)), "{text}: {error}");
            assert!(error.to_string().contains("expected cpu, cuda, cuda:N"), "{error}");
        }
        assert!(matches!("cuda:0,wgpu".parse::<DeviceSpec>(), Err(DeviceError::MixedBackends(_))));
        assert!(matches!("cuda,cuda:0".parse::<DeviceSpec>(), Err(DeviceError::Repeated(_))));
    }

    #[test]
    fn the_cpu_is_always_there() {
        let devices = DeviceSpec::cpu().devices().unwrap();
        assert_eq!(devices, vec![Device::flex()]);
        assert_eq!("cpu,cpu".parse::<DeviceSpec>().unwrap().devices().unwrap().len(), 2);
    }

    #[test]
    fn a_backend_not_built_names_the_feature_to_build_with() {
        for (text, feature) in [("cuda:1", "cuda"), ("wgpu", "wgpu"), ("ndarray", "ndarray")] {
            let spec: DeviceSpec = text.parse().unwrap();
            match spec.devices() {
                Ok(devices) => assert!(spec.names()[0].backend.is_built() && devices.len() == 1),
                Err(error) => {
                    let message = error.to_string();
                    assert!(message.contains(&format!("--features {feature}")), "{message}");
                    assert!(message.contains(text), "{message}");
                }
            }
        }
    }

    #[test]
    fn a_one_device_command_refuses_a_list() {
        let error = "cpu,cpu".parse::<DeviceSpec>().unwrap().single("generate").unwrap_err().to_string();
        assert!(error.contains("generate computes on one device") && error.contains("--device cpu"), "{error}");
    }
}
