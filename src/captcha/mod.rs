//! The built-in image captcha (`captcha.provider = "builtin"`).
//!
//! What it is for: stopping scripts that were not written for smsq. Each character is one of
//! two shapes, drawn from that shape's skeleton with every joint moved and every stroke bowed
//! at random, then scaled, sheared and rotated on its own, packed so neighbours overlap, and
//! the whole image is warped. Noise
//! strokes, glyph-like fragments and dots share the ink's colour and width, so thresholding
//! or thinning cannot tell them apart. A solver that knows this font and this code reads a
//! few percent of them (the test in `solver.rs` measures it). It does not stop a person paid
//! to solve captchas, or a model trained on this renderer: public endpoints should use a
//! vendor captcha (`captcha.provider = "tencent" | "geetest" | "turnstile"`).

use base64::Engine;

mod render;
#[cfg(test)]
mod solver;
pub mod vendor;

pub use render::{ALPHABET, Distortion, HEIGHT, width};

/// A random answer of `length` characters and its PNG image.
pub fn generate(length: u8) -> (String, Vec<u8>) {
    let (answer, pixels) = render::render(length, &Distortion::SHIPPED, &mut rand::rng());
    let png = encode_png(&pixels, width(length), HEIGHT);
    (answer, png)
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
