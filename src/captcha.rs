//! Image captchas (the seed blog's flow: a code is only sent after a solved image captcha).
//!
//! A small, dependency-light renderer: a 5×7 bitmap font scaled up, each glyph shifted at
//! random, over speckle and a few strike lines, encoded as a grayscale PNG. It stops casual
//! scripts, which is what the seed's flow asks of it; it is not a defence against OCR farms.

use base64::Engine;
use rand::RngExt;

/// No I, O, 0 or 1: too easy to confuse for a person.
pub const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

#[rustfmt::skip]
const GLYPHS: [[u8; 7]; 32] = [
    [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001], // A
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110], // B
    [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110], // C
    [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100], // D
    [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111], // E
    [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000], // F
    [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111], // G
    [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001], // H
    [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100], // J
    [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001], // K
    [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111], // L
    [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001], // M
    [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001], // N
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000], // P
    [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101], // Q
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001], // R
    [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110], // S
    [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100], // T
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110], // U
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100], // V
    [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010], // W
    [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001], // X
    [0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100], // Y
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111], // Z
    [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111], // 2
    [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110], // 3
    [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010], // 4
    [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110], // 5
    [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110], // 6
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000], // 7
    [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110], // 8
    [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100], // 9
];

const SCALE: usize = 4;
const CELL: usize = 5 * SCALE + 6;
const MARGIN: usize = 8;
pub const HEIGHT: usize = 7 * SCALE + 2 * MARGIN + 8;

pub fn width(length: u8) -> usize {
    length as usize * CELL + 2 * MARGIN
}

/// A random answer of `length` characters and its PNG image.
pub fn generate(length: u8) -> (String, Vec<u8>) {
    let mut rng = rand::rng();
    let answer: Vec<u8> = (0..length)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect();
    let (w, h) = (width(length), HEIGHT);
    let mut pixels: Vec<u8> = (0..w * h).map(|_| rng.random_range(215..=255)).collect();
    for (i, ch) in answer.iter().enumerate() {
        let glyph = &GLYPHS[ALPHABET.iter().position(|c| c == ch).unwrap_or(0)];
        let x0 = MARGIN + i * CELL + rng.random_range(0..4);
        let y0 = MARGIN + rng.random_range(0..8);
        let ink: u8 = rng.random_range(0..90);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..5 {
                if bits & (0b10000 >> col) != 0 {
                    for dy in 0..SCALE {
                        for dx in 0..SCALE {
                            pixels[(y0 + row * SCALE + dy) * w + x0 + col * SCALE + dx] = ink;
                        }
                    }
                }
            }
        }
    }
    for _ in 0..3 {
        let (mut y, slope) = (
            rng.random_range(0..h) as f32,
            rng.random_range(-0.3f32..0.3),
        );
        for x in 0..w {
            y = (y + slope).clamp(0.0, (h - 1) as f32);
            pixels[y as usize * w + x] = 60;
        }
    }
    (
        String::from_utf8(answer).unwrap_or_default(),
        encode_png(&pixels, w, h),
    )
}

fn encode_png(pixels: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w as u32, h as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    // Writing to a Vec cannot fail; an error here would be a bug in the sizes above.
    let mut writer = encoder.write_header().expect("png header into a Vec");
    writer
        .write_image_data(pixels)
        .expect("png data into a Vec");
    drop(writer);
    out
}

pub fn data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_decodable_png_with_an_answer_from_the_alphabet() {
        for length in 4..=8u8 {
            let (answer, png) = generate(length);
            assert_eq!(answer.len(), length as usize);
            assert!(answer.bytes().all(|b| ALPHABET.contains(&b)));
            let decoder = png::Decoder::new(std::io::Cursor::new(png));
            let reader = decoder.read_info().unwrap();
            let info = reader.info();
            assert_eq!(info.width as usize, width(length));
            assert_eq!(info.height as usize, HEIGHT);
        }
    }

    #[test]
    fn data_url_is_a_png_data_url() {
        let (_, png) = generate(4);
        assert!(data_url(&png).starts_with("data:image/png;base64,iVBORw0KGgo"));
    }
}
