//! A picture of where the captioner looked: the photo's centre crop, then one tile per written word with
//! the photo dimmed where that word's attention was low, each tile labelled with its word and the largest
//! weight of its step (the paper's figure 2, for any photo). Each tile is scaled between its step's lowest
//! and highest weight, so even a nearly flat attention shows where it leaned; the label's percentage says
//! how far it leaned (a flat map over 49 locations peaks at 2%).

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

/// Tiles per row of the picture.
const COLUMNS: usize = 5;
/// Height of the label band under each tile, and the text's scale (8 px glyphs drawn at 2x).
const LABEL_HEIGHT: u32 = 24;
const GLYPH_SCALE: u32 = 2;
/// Brightness kept where attention is lowest: dim, but the photo stays readable.
const FLOOR: f32 = 0.2;

/// Draws `crop` (the square the CNN saw) and one tile per `(label, weights)`; `weights` are a step's
/// attention over the `grid` (rows x columns) of locations, row-major.
pub fn render_attention(crop: &RgbImage, grid: [usize; 2], steps: &[(String, Vec<f32>)]) -> RgbImage {
    let side = crop.width();
    let tiles = steps.len() + 1;
    let columns = tiles.min(COLUMNS);
    let rows = tiles.div_ceil(COLUMNS);
    let tile_height = side + LABEL_HEIGHT;
    let mut canvas = RgbImage::from_pixel(side * columns as u32, tile_height * rows as u32, Rgb([255, 255, 255]));
    let mut place = |index: usize, tile: &RgbImage, label: &str| {
        let x = (index % COLUMNS) as u32 * side;
        let y = (index / COLUMNS) as u32 * tile_height;
        image::imageops::replace(&mut canvas, tile, i64::from(x), i64::from(y));
        draw_label(&mut canvas, x + 4, y + side + (LABEL_HEIGHT - 8 * GLYPH_SCALE) / 2, side - 8, label);
    };
    place(0, crop, "(photo)");
    for (index, (word, weights)) in steps.iter().enumerate() {
        let peak = weights.iter().copied().fold(0.0f32, f32::max);
        place(index + 1, &dim_by_attention(crop, grid, weights), &format!("{word} {:.0}%", peak * 100.0));
    }
    canvas
}

/// The crop with each pixel scaled by the attention at its place (bilinear between location centres),
/// from the step's lowest weight (dimmest) to its highest (unchanged).
fn dim_by_attention(crop: &RgbImage, grid: [usize; 2], weights: &[f32]) -> RgbImage {
    let [grid_rows, grid_columns] = grid;
    let largest = weights.iter().copied().fold(f32::MIN, f32::max);
    let smallest = weights.iter().copied().fold(f32::MAX, f32::min);
    let range = (largest - smallest).max(f32::MIN_POSITIVE);
    let at = |row: usize, column: usize| (weights[row * grid_columns + column] - smallest) / range;
    let side = crop.width() as f32;
    let mut tile = crop.clone();
    for (x, y, pixel) in tile.enumerate_pixels_mut() {
        // Position in grid coordinates, where location (r, c) has its centre at (r, c).
        let gy = ((y as f32 + 0.5) / side * grid_rows as f32 - 0.5).clamp(0.0, (grid_rows - 1) as f32);
        let gx = ((x as f32 + 0.5) / side * grid_columns as f32 - 0.5).clamp(0.0, (grid_columns - 1) as f32);
        let (r0, c0) = (gy.floor() as usize, gx.floor() as usize);
        let (r1, c1) = ((r0 + 1).min(grid_rows - 1), (c0 + 1).min(grid_columns - 1));
        let (fy, fx) = (gy - r0 as f32, gx - c0 as f32);
        let top = at(r0, c0) * (1.0 - fx) + at(r0, c1) * fx;
        let bottom = at(r1, c0) * (1.0 - fx) + at(r1, c1) * fx;
        let weight = FLOOR + (1.0 - FLOOR) * (top * (1.0 - fy) + bottom * fy);
        for channel in pixel.0.iter_mut() {
            *channel = (f32::from(*channel) * weight).round().clamp(0.0, 255.0) as u8;
        }
    }
    tile
}

/// Writes `text` in black 8x8 glyphs at `GLYPH_SCALE`, cut to fit `width` pixels.
fn draw_label(canvas: &mut RgbImage, x: u32, y: u32, width: u32, text: &str) {
    let advance = 8 * GLYPH_SCALE;
    for (index, character) in text.chars().take((width / advance) as usize).enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(character).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..8u32 {
                if bits >> column & 1 == 0 {
                    continue;
                }
                for dy in 0..GLYPH_SCALE {
                    for dx in 0..GLYPH_SCALE {
                        let px = x + index as u32 * advance + column * GLYPH_SCALE + dx;
                        let py = y + row as u32 * GLYPH_SCALE + dy;
                        if px < canvas.width() && py < canvas.height() {
                            canvas.put_pixel(px, py, Rgb([0, 0, 0]));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_bright_where_attention_is_and_labelled() {
        let crop = RgbImage::from_pixel(32, 32, Rgb([200, 200, 200]));
        // 2x2 grid: most attention on the top-left location.
        let picture = render_attention(&crop, [2, 2], &[("a".into(), vec![0.7, 0.1, 0.1, 0.1])]);
        assert_eq!(picture.dimensions(), (64, 32 + LABEL_HEIGHT));
        let top_left = picture.get_pixel(32 + 2, 2).0[0];
        let bottom_right = picture.get_pixel(32 + 29, 29).0[0];
        assert_eq!(top_left, 200);
        assert_eq!(bottom_right, (200.0 * FLOOR).round() as u8);
        // The label band holds black pixels (the glyphs of "a 70%").
        let band = (0..64).flat_map(|x| (32..32 + LABEL_HEIGHT).map(move |y| (x, y)));
        assert!(band.clone().any(|(x, y)| picture.get_pixel(x, y).0 == [0, 0, 0]));
    }
}
