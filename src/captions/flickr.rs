//! Flickr8k captions as distributed on Kaggle: a CSV `image,caption` with a header, five rows per image.

use std::collections::HashMap;
use std::path::Path;

use super::{Caption, CaptionDataset, CaptionedImage, DatasetError, DatasetKind};

/// Reads a Flickr8k `captions.txt`. Captions get the ids of the original `Flickr8k.token.txt`
/// (`image#n`, n counting from 0 in file order).
pub fn read_flickr8k(path: &Path) -> Result<CaptionDataset, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|error| DatasetError::Io { path: path.to_path_buf(), source: std::io::Error::other(error) })?;
    let headers = reader.headers().map_err(|error| format_error(path, 1, error.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|header| header.trim_start_matches('\u{feff}').trim() == name);
    let (Some(image_column), Some(caption_column)) = (column("image"), column("caption")) else {
        return Err(format_error(
            path,
            1,
            format!("expected the header `image,caption`, found `{}`", headers.iter().collect::<Vec<_>>().join(",")),
        ));
    };
    let mut images: Vec<CaptionedImage> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|error| {
            let line = error.position().map_or(0, |position| position.line() as usize);
            format_error(path, line, error.to_string())
        })?;
        let line = record.position().map_or(0, |position| position.line() as usize);
        let (Some(file_name), Some(text)) = (record.get(image_column), record.get(caption_column)) else {
            return Err(format_error(path, line, "expected two fields, `image,caption`".into()));
        };
        // No Flickr8k caption spans lines: one that does was opened by a quote that is never closed, and the
        // CSV reader would take the rest of the file as that one caption.
        if let Some(extra) = [file_name, text].iter().map(|field| field.matches('\n').count()).max().filter(|&n| n > 0)
        {
            return Err(format_error(
                path,
                line,
                format!("a quoted field runs over {} lines: a quote opened here is never closed", extra + 1),
            ));
        }
        let file_name = file_name.trim();
        if file_name.is_empty() {
            return Err(format_error(path, line, "the image name is empty".into()));
        }
        let index = *position.entry(file_name.to_string()).or_insert_with(|| {
            images.push(CaptionedImage {
                key: format!("flickr8k:{file_name}"),
                file_name: file_name.to_string(),
                captions: Vec::new(),
            });
            images.len() - 1
        });
        let image = &mut images[index];
        let id = format!("flickr8k:{file_name}#{}", image.captions.len());
        image.captions.push(Caption { id, text: text.trim().to_string() });
    }
    if images.is_empty() {
        return Err(DatasetError::Empty { path: path.to_path_buf() });
    }
    Ok(CaptionDataset { kind: DatasetKind::Flickr8k, source: path.to_path_buf(), images, orphan_captions: 0 })
}

fn format_error(path: &Path, line: usize, message: String) -> DatasetError {
    DatasetError::Format { path: path.to_path_buf(), line, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_captions_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.txt");
        std::fs::write(
            &path,
            "image,caption\r\na.jpg,A dog runs .\r\na.jpg,\"A dog, brown, runs .\"\r\nb.jpg,Two kids .\r\n",
        )
        .unwrap();
        let dataset = read_flickr8k(&path).unwrap();
        assert_eq!(dataset.images.len(), 2);
        assert_eq!(dataset.images[0].captions[1].text, "A dog, brown, runs .");
        assert_eq!(dataset.images[0].captions[1].id, "flickr8k:a.jpg#1");
        assert_eq!(dataset.images[1].key, "flickr8k:b.jpg");
    }

    #[test]
    fn an_unterminated_quote_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.txt");
        let mut text = String::from("image,caption\na.jpg,A dog .\nb.jpg,\"A cat sits .\n");
        for index in 0..14 {
            text.push_str(&format!("c{index}.jpg,A bird .\n"));
        }
        std::fs::write(&path, text).unwrap();
        let error = read_flickr8k(&path).unwrap_err().to_string();
        assert!(error.contains("line 3") && error.contains("never closed"), "{error}");
    }

    #[test]
    fn a_wrong_header_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.txt");
        std::fs::write(&path, "file\ttext\na.jpg\tA dog\n").unwrap();
        let error = read_flickr8k(&path).unwrap_err().to_string();
        assert!(
            error.contains("captions.txt") && error.contains("line 1") && error.contains("image,caption"),
            "{error}"
        );
    }
}
