//! Runs the imported EfficientNet-Lite on photos and writes what it saw as `.npy` files, for
//! `scripts/oracle/efficientnet_lite.py` to check against its numpy forward pass:
//!
//! ```text
//! cargo run --release --example efficientnet_check -- WEIGHTS.pth OUT_DIR photo.jpg [photo.png...]
//! python scripts/oracle/efficientnet_lite.py --weights WEIGHTS.pth --input OUT_DIR/input.npy \
//!     --compare-logits OUT_DIR/logits.npy --compare-features OUT_DIR/features.npy
//! ```

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::{Device, Tensor, TensorData};
use storytool::vision::{EfficientNet, load_image, preprocess};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, out, photos @ ..] = args.as_slice() else {
        anyhow::bail!("usage: efficientnet_check WEIGHTS.pth OUT_DIR PHOTO...");
    };
    let device = Device::flex();
    let model = EfficientNet::from_pytorch(&PathBuf::from(weights), &device)?;
    let size = model.image_size as usize;
    let mut input = Vec::new();
    for photo in photos {
        input.extend(preprocess(&load_image(&PathBuf::from(photo))?, model.image_size));
    }
    let count = photos.len();
    let images = Tensor::<4>::from_data(TensorData::new(input.clone(), [count, 3, size, size]), &device);
    let output = model.forward(images);
    let logits = model.classify(output.pooled.clone());
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    write_npy(&out.join("input.npy"), &input, &[count, 3, size, size])?;
    let features: Vec<f32> =
        output.pooled.into_data().try_to_vec::<f32>().map_err(|error| anyhow::anyhow!("{error:?}"))?;
    write_npy(&out.join("features.npy"), &features, &[count, 1280])?;
    let logits: Vec<f32> = logits.into_data().try_to_vec::<f32>().map_err(|error| anyhow::anyhow!("{error:?}"))?;
    let classes = logits.len() / count;
    write_npy(&out.join("logits.npy"), &logits, &[count, classes])?;
    for (photo, row) in photos.iter().zip(logits.chunks(classes)) {
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        println!("{photo}: top-5 {:?}", &order[..5]);
    }
    Ok(())
}

/// A little-endian float32 `.npy` file (format version 1.0).
fn write_npy(path: &std::path::Path, values: &[f32], shape: &[usize]) -> anyhow::Result<()> {
    let shape: Vec<String> = shape.iter().map(|dim| dim.to_string()).collect();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}", shape.join(", "));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    file.write_all(b"\x93NUMPY\x01\x00")?;
    file.write_all(&(header.len() as u16).to_le_bytes())?;
    file.write_all(header.as_bytes())?;
    file.write_all(bytemuck::cast_slice(values))?;
    Ok(())
}
