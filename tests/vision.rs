//! EfficientNet-Lite import from a PyTorch state dict the test writes, and `extract-features` end to end
//! on fixture annotation files whose photos are partly missing or corrupt.

mod support;

use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use storytool::vision::EfficientNet;

fn values_of<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn a_written_state_dict_is_imported_into_the_right_places() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.pth");
    let tensors = support::tiny_efficientnet(5);
    support::write_legacy_pth(&path, &tensors);
    let device = Device::flex();
    let model = EfficientNet::from_pytorch(&path, &device).unwrap();
    let find = |name: &str| tensors.iter().find(|(key, _, _)| key == name).unwrap().2.clone();

    assert_eq!(model.blocks.len(), 1);
    assert!(model.blocks[0].expand_conv.is_none());
    assert!(!model.blocks[0].residual, "32 -> 16 channels cannot be residual");
    assert_eq!(values_of(model.conv_stem.weight.val()), find("_conv_stem.weight"));
    assert_eq!(values_of(model.blocks[0].bn1.running_var.value()), find("_blocks.0._bn1.running_var"));
    assert_eq!(values_of(model.bn1.gamma.val()), find("_bn1.weight"));
    assert_eq!(values_of(model.fc.bias.clone().unwrap().val()), find("_fc.bias"));
    // PyTorch's Linear weight is [out, in]; burn's is [in, out].
    let fc = values_of(model.fc.weight.val());
    let torch_fc = find("_fc.weight");
    assert_eq!(fc[1], torch_fc[1280]);
    assert_eq!(fc[5], torch_fc[1]);

    let input = Tensor::<4>::from_data(TensorData::new(support::values(3 * 64 * 64, 7, 1.0), [1, 3, 64, 64]), &device);
    let output = model.forward(input.clone());
    assert_eq!(output.spatial.dims(), [1, 1280, 32, 32]);
    let pooled = values_of(output.pooled);
    assert!(pooled.iter().all(|value| value.is_finite() && *value >= 0.0 && *value <= 6.0), "ReLU6 bounds");
    assert_eq!(pooled, values_of(model.forward(input).pooled), "inference is deterministic");
}

#[test]
fn a_file_that_is_not_a_state_dict_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.pth");
    std::fs::write(&path, b"certainly not pickled tensors").unwrap();
    let error = EfficientNet::from_pytorch(&path, &Device::flex()).unwrap_err().to_string();
    assert!(error.contains("weights.pth"), "{error}");
}

fn storytool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_storytool"))
}

#[test]
fn extract_features_skips_missing_and_corrupt_photos_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("tiny.pth");
    support::write_legacy_pth(&weights, &support::tiny_efficientnet(3));
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    support::write_photo(&images.join("a.jpg"), 80, 60, 3); // a PNG named .jpg: sniffed, read
    support::write_photo(&images.join("b.png"), 40, 90, 9);
    support::write_truncated_jpeg(&images.join("broken.jpg"));
    std::fs::write(images.join("notes.jpg"), "this is a text file").unwrap();
    let coco = dir.path().join("captions.json");
    std::fs::write(
        &coco,
        r#"{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.png"},
            {"id": 3, "file_name": "gone.jpg"}, {"id": 4, "file_name": "broken.jpg"}, {"id": 5, "file_name": "notes.jpg"}],
            "annotations": [{"image_id": 1, "id": 10, "caption": "A red thing."}, {"image_id": 2, "id": 11, "caption": "A blue thing."},
            {"image_id": 3, "id": 12, "caption": "Lost."}, {"image_id": 4, "id": 13, "caption": "Broken."},
            {"image_id": 5, "id": 14, "caption": "Text."}]}"#,
    )
    .unwrap();
    let out = dir.path().join("features");
    let result = storytool()
        .args(["extract-features", "--dataset", "coco", "--annotations"])
        .arg(&coco)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&out)
        .arg("--cnn")
        .arg(&weights)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&result.stderr));
    assert!(stdout.contains("5 images named, 2 extracted") && stdout.contains("1 missing, 2 unreadable"), "{stdout}");
    assert!(stdout.contains("broken.jpg") && stdout.contains("notes.jpg"), "{stdout}");

    let set = storytool::features::FeatureSet::open(&out).unwrap();
    assert_eq!(set.images.iter().map(|image| image.key.as_str()).collect::<Vec<_>>(), ["coco:1", "coco:2"]);
    assert_eq!((set.pooled.rows, set.pooled.columns), (2, 1280));
    assert_eq!(set.manifest.missing[0].file_name, "gone.jpg");
    assert_eq!(set.all_captions().unwrap().len(), 5, "every caption is kept for the vocabulary and bank");
    assert_ne!(set.pooled.row(0), set.pooled.row(1));

    // A second run refuses to overwrite without --force; a Flickr file with a bad header names its line.
    let again = storytool()
        .args(["extract-features", "--dataset", "coco", "--annotations"])
        .arg(&coco)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&out)
        .arg("--cnn")
        .arg(&weights)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let flickr = dir.path().join("captions.txt");
    std::fs::write(&flickr, "photo;text\na.jpg;A dog\n").unwrap();
    let bad = storytool()
        .args(["extract-features", "--dataset", "flickr8k", "--captions"])
        .arg(&flickr)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(dir.path().join("flickr"))
        .arg("--cnn")
        .arg(&weights)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("captions.txt") && stderr.contains("line 1"), "{stderr}");
}
