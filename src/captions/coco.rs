//! COCO captions: `{"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "id", "caption"}]}`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{Caption, CaptionDataset, CaptionedImage, DatasetError, DatasetKind};

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    annotations: Vec<CocoAnnotation>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    id: u64,
    caption: String,
}

/// Reads a COCO captions file. Images keep the file's order; captions of an image keep theirs.
pub fn read_coco(path: &Path) -> Result<CaptionDataset, DatasetError> {
    let bytes = std::fs::read(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    let file: CocoFile = serde_json::from_slice(&bytes).map_err(|error| DatasetError::Format {
        path: path.to_path_buf(),
        line: error.line(),
        message: format!("not a COCO captions file: {error}"),
    })?;
    let mut images: Vec<CaptionedImage> = file
        .images
        .iter()
        .map(|image| CaptionedImage {
            key: format!("coco:{}", image.id),
            file_name: image.file_name.clone(),
            captions: Vec::new(),
        })
        .collect();
    let position: HashMap<u64, usize> =
        file.images.iter().enumerate().map(|(index, image)| (image.id, index)).collect();
    let mut orphan_captions = 0;
    for annotation in file.annotations {
        match position.get(&annotation.image_id) {
            Some(&index) => images[index]
                .captions
                .push(Caption { id: format!("coco:{}", annotation.id), text: annotation.caption.trim().to_string() }),
            None => orphan_captions += 1,
        }
    }
    images.retain(|image| !image.captions.is_empty());
    if images.is_empty() {
        return Err(DatasetError::Empty { path: path.to_path_buf() });
    }
    Ok(CaptionDataset { kind: DatasetKind::Coco, source: path.to_path_buf(), images, orphan_captions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_images_and_captions_and_counts_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.json");
        std::fs::write(
            &path,
            r#"{"info": {}, "images": [{"id": 7, "file_name": "a.jpg", "width": 3},
               {"id": 9, "file_name": "b.jpg"}, {"id": 11, "file_name": "silent.jpg"}],
               "annotations": [{"image_id": 9, "id": 1, "caption": " A dog. "},
               {"image_id": 7, "id": 2, "caption": "A cat."}, {"image_id": 9, "id": 3, "caption": "A brown dog."},
               {"image_id": 42, "id": 4, "caption": "Nobody's picture."}]}"#,
        )
        .unwrap();
        let dataset = read_coco(&path).unwrap();
        assert_eq!(dataset.images.len(), 2);
        assert_eq!(dataset.images[0].key, "coco:7");
        assert_eq!(dataset.images[1].captions[0], Caption { id: "coco:1".into(), text: "A dog.".into() });
        assert_eq!(dataset.images[1].captions.len(), 2);
        assert_eq!(dataset.orphan_captions, 1);
    }

    #[test]
    fn a_broken_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.json");
        std::fs::write(&path, "{\"images\": [\n{\"id\": \"seven\"}]}").unwrap();
        let error = read_coco(&path).unwrap_err().to_string();
        assert!(error.contains("line 2") && error.contains("captions.json"), "{error}");
    }
}
