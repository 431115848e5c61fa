//! Drawing one captcha: glyph skeletons, moved and bent, over noise in the same ink.

use rand::{Rng, RngExt};

/// No I, O, 0 or 1: too easy to confuse for a person.
pub const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

#[rustfmt::skip]
pub(super) const GLYPHS: [[u8; 7]; 32] = [
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

/// A second shape of each character (in `ALPHABET`'s order): each draw picks one of the two.
#[rustfmt::skip]
pub(super) const ALTERNATES: [[u8; 7]; 32] = [
    [0b00100, 0b01010, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001], // A
    [0b11110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b11110], // B
    [0b11111, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111], // C
    [0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110], // D
    [0b11111, 0b10000, 0b10000, 0b11100, 0b10000, 0b10000, 0b11111], // E
    [0b11111, 0b10000, 0b10000, 0b11100, 0b10000, 0b10000, 0b10000], // F
    [0b01111, 0b10000, 0b10000, 0b10011, 0b10001, 0b10001, 0b01110], // G
    [0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0b10001], // H
    [0b11111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100], // J
    [0b10001, 0b10001, 0b10010, 0b11100, 0b10010, 0b10001, 0b10001], // K
    [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10001, 0b11111], // L
    [0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001, 0b10001], // M
    [0b10001, 0b11001, 0b11001, 0b10101, 0b10011, 0b10011, 0b10001], // N
    [0b11110, 0b10001, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000], // P
    [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0b00011], // Q
    [0b11110, 0b10001, 0b10001, 0b10001, 0b11110, 0b10010, 0b10001], // R
    [0b01110, 0b10001, 0b10000, 0b01110, 0b00001, 0b10001, 0b01110], // S
    [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110], // T
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101], // U
    [0b10001, 0b10001, 0b10001, 0b01010, 0b01010, 0b01010, 0b00100], // V
    [0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b11011, 0b10001], // W
    [0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b01010, 0b10001], // X
    [0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100], // Y
    [0b11111, 0b00001, 0b00010, 0b01110, 0b01000, 0b10000, 0b11111], // Z
    [0b01110, 0b10001, 0b00001, 0b00110, 0b01000, 0b10000, 0b11111], // 2
    [0b01110, 0b10001, 0b00001, 0b00110, 0b00001, 0b10001, 0b01110], // 3
    [0b10010, 0b10010, 0b10010, 0b11111, 0b00010, 0b00010, 0b00010], // 4
    [0b11111, 0b10000, 0b10000, 0b11110, 0b00001, 0b00001, 0b11110], // 5
    [0b01110, 0b10000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110], // 6
    [0b11111, 0b00001, 0b00001, 0b00010, 0b00100, 0b00100, 0b00100], // 7
    [0b01110, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b01110], // 8
    [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001, 0b01110], // 9
];

/// One grid step of a glyph, in pixels.
pub(super) const CELL: f32 = 5.5;
/// Horizontal room per character on the canvas (the characters' own spacing is
/// [`Distortion::spacing`]).
const ADVANCE: usize = 26;
const MARGIN: usize = 12;
pub const HEIGHT: usize = 64;

pub fn width(length: u8) -> usize {
    length as usize * ADVANCE + 2 * MARGIN
}

/// Where the renderer puts character `i`'s centre (before its jitter).
pub(super) fn centre(length: u8, i: usize, spacing: f32) -> f32 {
    width(length) as f32 / 2.0 + (i as f32 - (f32::from(length) - 1.0) / 2.0) * spacing
}

/// How much each captcha is bent. `SHIPPED` is what `POST /v1/captchas` serves; the solver
/// test also renders with `NONE` to show the solver reads an undistorted image.
#[derive(Debug, Clone, Copy)]
pub struct Distortion {
    /// Largest rotation of a character, radians.
    pub rotate: f32,
    pub shear: f32,
    /// Scale of a character: 1 ± this.
    pub scale: f32,
    /// How far each joint of a glyph moves, in grid steps.
    pub joints: f32,
    /// Amplitude of the whole image's wave, pixels.
    pub wave: f32,
    /// Vertical jitter of each character, pixels.
    pub baseline: f32,
    /// From one character's centre to the next, pixels: below a glyph's width (about 25),
    /// neighbours overlap.
    pub spacing: f32,
    /// Noise drawn in the ink's colour and width.
    pub strokes: u32,
    pub fragments: u32,
    pub dots: u32,
}

impl Distortion {
    pub const SHIPPED: Distortion = Distortion {
        rotate: 0.3,
        shear: 0.25,
        scale: 0.2,
        joints: 0.13,
        wave: 2.4,
        baseline: 5.0,
        spacing: 23.5,
        strokes: 1,
        fragments: 3,
        dots: 8,
    };

    #[cfg(test)]
    pub const NONE: Distortion = Distortion {
        rotate: 0.0,
        shear: 0.0,
        scale: 0.0,
        joints: 0.0,
        wave: 0.0,
        baseline: 0.0,
        spacing: 28.0,
        strokes: 0,
        fragments: 0,
        dots: 0,
    };
}

type Point = (f32, f32);

/// The segments of a glyph's skeleton in grid units: its set cells, joined to their
/// neighbours (a diagonal only where no square corner already joins the two).
pub(super) fn skeleton(glyph: &[u8; 7]) -> (Vec<Point>, Vec<(usize, usize)>) {
    let set = |c: i32, r: i32| {
        (0..5).contains(&c) && (0..7).contains(&r) && glyph[r as usize] & (0b10000 >> c) != 0
    };
    let mut nodes = Vec::new();
    let mut index = std::collections::HashMap::new();
    for r in 0..7 {
        for c in 0..5 {
            if set(c, r) {
                index.insert((c, r), nodes.len());
                nodes.push((c as f32, r as f32));
            }
        }
    }
    let mut edges = Vec::new();
    for (&(c, r), &i) in &index {
        for (dc, dr) in [(1, 0), (0, 1), (1, 1), (-1, 1)] {
            let Some(&j) = index.get(&(c + dc, r + dr)) else {
                continue;
            };
            let diagonal = dc != 0 && dr != 0;
            if diagonal && (set(c + dc, r) || set(c, r + dr)) {
                continue;
            }
            edges.push((i, j));
        }
        if edges.iter().all(|&(a, b)| a != i && b != i) && !has_neighbour(&set, c, r) {
            edges.push((i, i));
        }
    }
    (nodes, edges)
}

fn has_neighbour(set: &impl Fn(i32, i32) -> bool, c: i32, r: i32) -> bool {
    (-1..=1).any(|dc| (-1..=1).any(|dr| (dc, dr) != (0, 0) && set(c + dc, r + dr)))
}

/// The canvas: light background, darkened by strokes.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<f32>,
}

impl Canvas {
    /// A stroke from `a` to `b`, `width` wide, anti-aliased, in `ink`.
    fn segment(&mut self, a: Point, b: Point, width: f32, ink: f32) {
        let r = width / 2.0;
        let (x0, x1) = (a.0.min(b.0) - r - 1.0, a.0.max(b.0) + r + 1.0);
        let (y0, y1) = (a.1.min(b.1) - r - 1.0, a.1.max(b.1) + r + 1.0);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for y in (y0.max(0.0) as usize)..(y1.min(self.h as f32 - 1.0).max(0.0) as usize + 1) {
            for x in (x0.max(0.0) as usize)..(x1.min(self.w as f32 - 1.0).max(0.0) as usize + 1) {
                let (px, py) = (x as f32, y as f32);
                let t = if len2 > 0.0 {
                    (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (qx, qy) = (a.0 + t * dx - px, a.1 + t * dy - py);
                let cover = (r + 0.5 - (qx * qx + qy * qy).sqrt()).clamp(0.0, 1.0);
                let p = &mut self.px[y * self.w + x];
                *p = p.min(*p * (1.0 - cover) + ink * cover);
            }
        }
    }

    fn polyline(&mut self, points: &[Point], width: f32, ink: f32) {
        for pair in points.windows(2) {
            self.segment(pair[0], pair[1], width, ink);
        }
    }
}

/// One glyph, straight from its skeleton: rotated by `theta`, sheared by `shear`, centred in a
/// `w`×`h` image (what a solver that knows this code renders its templates with).
#[cfg(test)]
pub(super) fn glyph(shape: &[u8; 7], theta: f32, shear: f32, w: usize, h: usize) -> Vec<u8> {
    let mut canvas = Canvas {
        w,
        h,
        px: vec![240.0; w * h],
    };
    let (nodes, edges) = skeleton(shape);
    let (sin, cos) = theta.sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let placed: Vec<Point> = nodes
        .iter()
        .map(|&(c, r)| {
            let (u, v) = ((c - 2.0) * CELL, (r - 3.0) * CELL);
            let u = u + shear * v;
            (cx + u * cos - v * sin, cy + u * sin + v * cos)
        })
        .collect();
    for &(a, b) in &edges {
        canvas.segment(placed[a], placed[b], 3.2, 60.0);
    }
    canvas.px.iter().map(|v| *v as u8).collect()
}

/// A random answer of `length` characters and its pixels (grayscale, row by row).
pub(super) fn render(length: u8, d: &Distortion, rng: &mut impl Rng) -> (String, Vec<u8>) {
    let (w, h) = (width(length), HEIGHT);
    let answer: Vec<u8> = (0..length)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect();
    let mut canvas = Canvas {
        w,
        h,
        px: (0..w * h)
            .map(|_| rng.random_range(205.0..=250.0))
            .collect(),
    };
    let ink: f32 = rng.random_range(20.0..100.0);
    let spread = |rng: &mut dyn rand::Rng, x: f32| {
        if x > 0.0 {
            rng.random_range(-x..=x)
        } else {
            0.0
        }
    };
    for (i, ch) in answer.iter().enumerate() {
        let at = ALPHABET.iter().position(|c| c == ch).unwrap_or(0);
        let shape = if rng.random_bool(0.5) {
            &GLYPHS[at]
        } else {
            &ALTERNATES[at]
        };
        let (nodes, edges) = skeleton(shape);
        let theta = spread(rng, d.rotate);
        let shear = spread(rng, d.shear);
        let (sx, sy) = (1.0 + spread(rng, d.scale), 1.0 + spread(rng, d.scale));
        let cx = centre(length, i, d.spacing) + spread(rng, 2.0 * d.baseline / 3.0);
        let cy = h as f32 / 2.0 + spread(rng, d.baseline);
        let (sin, cos) = theta.sin_cos();
        let placed: Vec<Point> = nodes
            .iter()
            .map(|&(c, r)| {
                let u = (c - 2.0 + spread(rng, d.joints)) * CELL * sx;
                let v = (r - 3.0 + spread(rng, d.joints)) * CELL * sy;
                let u = u + shear * v;
                (cx + u * cos - v * sin, cy + u * sin + v * cos)
            })
            .collect();
        let stroke = rng.random_range(2.4..4.2);
        for &(a, b) in &edges {
            // Each stroke bows a little at its middle, so no two draws of a glyph match.
            let (pa, pb) = (placed[a], placed[b]);
            let bow = spread(rng, d.joints) * CELL;
            let (dx, dy) = (pb.0 - pa.0, pb.1 - pa.1);
            let len = (dx * dx + dy * dy).sqrt().max(1e-3);
            let mid = (
                (pa.0 + pb.0) / 2.0 - dy / len * bow,
                (pa.1 + pb.1) / 2.0 + dx / len * bow,
            );
            canvas.polyline(&[pa, mid, pb], stroke, ink);
        }
    }
    noise(&mut canvas, d, ink, rng);
    (
        String::from_utf8(answer).unwrap_or_default(),
        wave(&canvas, d.wave, rng),
    )
}

/// Strokes across the image, glyph-like fragments and dots: all in the ink's colour and
/// width, so nothing but the shapes tells them from the characters.
fn noise(canvas: &mut Canvas, d: &Distortion, ink: f32, rng: &mut impl Rng) {
    let (w, h) = (canvas.w as f32, canvas.h as f32);
    for _ in 0..d.strokes {
        let (a, c) = (
            (0.0, rng.random_range(8.0..h - 8.0)),
            (w, rng.random_range(8.0..h - 8.0)),
        );
        let b = (
            rng.random_range(0.2 * w..0.8 * w),
            rng.random_range(-h..2.0 * h),
        );
        let curve: Vec<Point> = (0..=40)
            .map(|k| {
                let t = k as f32 / 40.0;
                let m = 1.0 - t;
                (
                    m * m * a.0 + 2.0 * m * t * b.0 + t * t * c.0,
                    m * m * a.1 + 2.0 * m * t * b.1 + t * t * c.1,
                )
            })
            .collect();
        canvas.polyline(&curve, rng.random_range(2.4..3.4), ink);
    }
    for _ in 0..d.fragments {
        let mut p = (rng.random_range(0.0..w), rng.random_range(6.0..h - 6.0));
        let mut points = vec![p];
        for _ in 0..rng.random_range(1..=3) {
            let angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            let len = rng.random_range(CELL..2.5 * CELL);
            p = (p.0 + len * angle.cos(), p.1 + len * angle.sin());
            points.push(p);
        }
        canvas.polyline(&points, rng.random_range(2.6..3.8), ink);
    }
    for _ in 0..d.dots {
        let p = (rng.random_range(0.0..w), rng.random_range(0.0..h));
        canvas.segment(p, p, rng.random_range(2.0..3.6), ink);
    }
}

/// The whole image bent by two sine waves (bilinear sampling).
fn wave(canvas: &Canvas, amplitude: f32, rng: &mut impl Rng) -> Vec<u8> {
    let (w, h) = (canvas.w, canvas.h);
    let (px, py) = (rng.random_range(30.0..48.0), rng.random_range(26.0..40.0));
    let (fx, fy) = (rng.random_range(0.0..6.3f32), rng.random_range(0.0..6.3f32));
    let at = |x: i64, y: i64| {
        canvas.px[(y.clamp(0, h as i64 - 1) as usize) * w + x.clamp(0, w as i64 - 1) as usize]
    };
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let sx = x as f32 + amplitude * (y as f32 / py * std::f32::consts::TAU + fx).sin();
            let sy = y as f32 + amplitude * (x as f32 / px * std::f32::consts::TAU + fy).sin();
            let (x0, y0) = (sx.floor(), sy.floor());
            let (tx, ty) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let v = at(x0, y0) * (1.0 - tx) * (1.0 - ty)
                + at(x0 + 1, y0) * tx * (1.0 - ty)
                + at(x0, y0 + 1) * (1.0 - tx) * ty
                + at(x0 + 1, y0 + 1) * tx * ty;
            out.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    out
}
