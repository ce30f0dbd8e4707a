//! From an image file to the tensor EfficientNet-Lite expects.
//!
//! The format is sniffed from the bytes (a `.jpg` that is really a PNG still decodes), the EXIF orientation
//! is applied (phone photos are stored sideways), the shorter side is resized to the model's input size
//! with an antialiased bilinear filter and the centre square is cropped. Pixels become `(x - 127) / 128`,
//! the normalisation the Lite models were trained with, laid out channel-first (RGB).

use crate::util::Cause;
use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// The most pixels (width x height) an image may declare before it is refused undecoded: a guard against
/// decompression bombs, far above any photo's size.
pub const MAX_PIXELS: u64 = 64_000_000;

/// The most one side may exceed the other. Every photo is resized so that its shorter side is the model's
/// input size (224 or 448 pixels) before the centre is cropped, so the resized picture is `ratio` input
/// squares: a 100000x1 strip of 370 bytes would ask for 15 GB. At 20:1 (wider than any panorama) the resized
/// picture stays under 20 squares (3 MB at 224 px, 12 MB at 448).
pub const MAX_ASPECT_RATIO: u32 = 20;

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read `{path}`")]
    Io { path: String, source: std::io::Error },
    #[error("`{path}` is not an image this tool can read (JPEG, PNG or WebP)")]
    Decode {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("`{path}` declares {width}x{height} pixels, more than the {max_pixels} allowed")]
    TooLarge { path: String, width: u32, height: u32, max_pixels: u64 },
    #[error(
        "`{path}` is {width}x{height} pixels: one side is more than {MAX_ASPECT_RATIO} times the other, which no photo is"
    )]
    BadShape { path: String, width: u32, height: u32 },
    #[error("`{path}` is not a whole JPEG: {source}")]
    Truncated { path: String, source: super::jpeg::JpegError },
}

/// Decodes an image from bytes (format sniffed from its content), applying its EXIF orientation. `name`
/// is used in errors only.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<DynamicImage, ImageError> {
    decode_image_within(bytes, name, MAX_PIXELS)
}

/// [`decode_image`] with a lower pixel limit (a server bounds the memory of each worker by it: a photo
/// takes about 7 bytes a pixel while it is decoded and converted).
pub fn decode_image_within(bytes: &[u8], name: &str, max_pixels: u64) -> Result<DynamicImage, ImageError> {
    let max_pixels = max_pixels.min(MAX_PIXELS);
    let decode_error = |error: image::ImageError| ImageError::Decode { path: name.to_string(), source: error.into() };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImageError::Io { path: name.to_string(), source })?;
    let reader_format = reader.format();
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels * 4 + (64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ImageError::TooLarge { path: name.to_string(), width, height, max_pixels });
    }
    let (short, long) = (width.min(height), width.max(height));
    if short == 0 || u64::from(long) > u64::from(short) * u64::from(MAX_ASPECT_RATIO) {
        return Err(ImageError::BadShape { path: name.to_string(), width, height });
    }
    if reader_format == Some(ImageFormat::Jpeg) {
        super::jpeg::check_complete(bytes)
            .map_err(|source| ImageError::Truncated { path: name.to_string(), source })?;
    }
    let orientation = decoder.orientation().map_err(decode_error)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Reads and decodes an image file.
pub fn load_image(path: &Path) -> Result<DynamicImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io { path: path.display().to_string(), source })?;
    decode_image(&bytes, &path.display().to_string())
}

/// Resizes so that the shorter side is `size` (the longer one rounded to the nearest pixel) and crops
/// the centre `size` x `size` square.
pub fn resize_and_crop(image: &DynamicImage, size: u32) -> RgbImage {
    let rgb = image.to_rgb8();
    let (width, height) = rgb.dimensions();
    let short = width.min(height).max(1);
    let scale = |side: u32| ((f64::from(side) * f64::from(size) / f64::from(short)).round() as u32).max(size);
    let (new_width, new_height) = (scale(width), scale(height));
    let resized = if (new_width, new_height) == (width, height) {
        rgb
    } else {
        image::imageops::resize(&rgb, new_width, new_height, FilterType::Triangle)
    };
    let left = (new_width - size) / 2;
    let top = (new_height - size) / 2;
    image::imageops::crop_imm(&resized, left, top, size, size).to_image()
}

/// Channel-first `[3, size, size]` values `(x - 127) / 128` of a square RGB image.
pub fn normalise(square: &RgbImage) -> Vec<f32> {
    let (width, height) = square.dimensions();
    let plane = (width * height) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (index, pixel) in square.pixels().enumerate() {
        for channel in 0..3 {
            out[channel * plane + index] = (f32::from(pixel[channel]) - 127.0) / 128.0;
        }
    }
    out
}

/// The whole path from decoded image to model input.
pub fn preprocess(image: &DynamicImage, size: u32) -> Vec<f32> {
    normalise(&resize_and_crop(image, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb};

    #[test]
    fn known_pixels_give_known_values() {
        let mut square = RgbImage::new(2, 2);
        square.put_pixel(0, 0, Rgb([127, 255, 0]));
        square.put_pixel(1, 0, Rgb([255, 0, 127]));
        square.put_pixel(0, 1, Rgb([0, 127, 255]));
        square.put_pixel(1, 1, Rgb([127, 127, 127]));
        let values = normalise(&square);
        let r = [0.0, 1.0, -127.0 / 128.0, 0.0];
        let g = [1.0, -127.0 / 128.0, 0.0, 0.0];
        let b = [-127.0 / 128.0, 0.0, 1.0, 0.0];
        assert_eq!(&values[0..4], &r);
        assert_eq!(&values[4..8], &g);
        assert_eq!(&values[8..12], &b);
    }

    #[test]
    fn the_centre_is_cropped_from_a_wide_image() {
        // 6x2 image: left third red, middle third green, right third blue; size 2 keeps the middle.
        let mut wide = RgbImage::new(6, 2);
        for (x, _, pixel) in wide.enumerate_pixels_mut() {
            *pixel = match x {
                0..=1 => Rgb([255, 0, 0]),
                2..=3 => Rgb([0, 255, 0]),
                _ => Rgb([0, 0, 255]),
            };
        }
        let square = resize_and_crop(&DynamicImage::ImageRgb8(wide), 2);
        assert_eq!(square.dimensions(), (2, 2));
        assert!(square.pixels().all(|pixel| *pixel == Rgb([0, 255, 0])));
    }

    #[test]
    fn a_uniform_image_stays_uniform_through_resizing() {
        let tall = RgbImage::from_pixel(30, 90, Rgb([10, 200, 127]));
        let values = preprocess(&DynamicImage::ImageRgb8(tall), 8);
        assert_eq!(values.len(), 3 * 64);
        assert!(values[..64].iter().all(|&v| (v - (10.0 - 127.0) / 128.0).abs() < 1e-6));
        assert!(values[64..128].iter().all(|&v| (v - (200.0 - 127.0) / 128.0).abs() < 1e-6));
        assert!(values[128..].iter().all(|&v| v.abs() < 1e-6));
    }

    #[test]
    fn format_is_sniffed_and_garbage_is_an_error() {
        let image = RgbImage::from_pixel(4, 3, Rgb([1, 2, 3]));
        let mut png = Vec::new();
        image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).unwrap();
        let decoded = decode_image(&png, "photo.jpg").unwrap();
        assert_eq!((decoded.width(), decoded.height()), (4, 3));
        let error = decode_image(b"not an image at all", "notes.jpg").unwrap_err();
        assert!(error.to_string().contains("notes.jpg"), "{error}");
        let truncated = &png[..png.len() / 2];
        assert!(decode_image(truncated, "half.png").is_err());
    }

    fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let image = RgbImage::from_pixel(width, height, Rgb([90, 20, 200]));
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
        bytes
    }

    #[test]
    fn strips_are_refused_by_their_shape_before_decoding() {
        for (width, height) in [(100_000, 1), (1, 20_000), (2_100, 100)] {
            let error = decode_image(&encoded(width, height, ImageFormat::Png), "strip.png").unwrap_err();
            assert!(matches!(error, ImageError::BadShape { .. }), "{width}x{height}: {error}");
            assert!(error.to_string().contains(&format!("{width}x{height}")), "{error}");
        }
        assert!(decode_image(&encoded(2_000, 100, ImageFormat::Png), "panorama.png").is_ok());
    }

    #[test]
    fn a_truncated_jpeg_is_an_error_naming_the_cause() {
        let whole = encoded(64, 48, ImageFormat::Jpeg);
        assert!(decode_image(&whole, "whole.jpg").is_ok());
        // Cut inside the scan, past every header: the decoder alone would fill the rest with grey.
        assert!(image::load_from_memory(&whole[..whole.len() - 20]).is_ok());
        let error = decode_image(&whole[..whole.len() - 20], "cut.jpg").unwrap_err();
        assert!(error.to_string().contains("cut.jpg") && error.to_string().contains("truncated"), "{error}");
    }
}
