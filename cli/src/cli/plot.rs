//! Raw samples out: a CSV file and an SVG picture of the latency
//! distribution, written by hand. Not plotters: its labels need a font
//! backend (`ttf`, which loads system fonts through fontconfig, or
//! `ab_glyph` with a font file we would ship), while an SVG's `<text>` is
//! laid out by whoever views it.
//!
//! The picture is a cumulative distribution: x is the round-trip time in
//! microseconds on a log scale, y is the fraction of round trips at or below
//! it on a tail-stretched scale (`-log10(1 - q)`: 0%, 90%, 99%, 99.9%, ...
//! equally spaced), so the median and the tail are both readable. One curve
//! per series, with a legend giving each one's p50 and p99.

use std::fmt::Write as _;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use anyhow::Context;

/// One named set of round-trip times in nanoseconds.
pub(crate) struct Series<'a> {
    /// Name in the legend and the CSV's `name` column.
    pub name: &'a str,
    /// The samples, in any order.
    pub samples: &'a [u64],
}

/// Writes `name,sample_ns` and one row per sample of every series, in order.
pub(crate) fn write_csv(path: &Path, series: &[Series<'_>]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create the CSV file {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let write = |out: &mut BufWriter<std::fs::File>| -> std::io::Result<()> {
        writeln!(out, "name,sample_ns")?;
        for s in series {
            for v in s.samples {
                writeln!(out, "{},{v}", csv_field(s.name))?;
            }
        }
        out.flush()
    };
    write(&mut out).with_context(|| format!("cannot write the CSV file {}", path.display()))
}

/// `name`, quoted if it holds a comma, a quote or a line break.
fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

/// Chart geometry, in SVG user units.
const WIDTH: f64 = 960.0;
/// Total height.
const HEIGHT: f64 = 600.0;
/// Left margin (y tick labels and axis title).
const LEFT: f64 = 90.0;
/// Right margin.
const RIGHT: f64 = 30.0;
/// Top margin (title).
const TOP: f64 = 60.0;
/// Bottom margin (x tick labels and axis title).
const BOTTOM: f64 = 70.0;
/// Series colours (colour-blind friendly, Okabe-Ito).
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Writes the SVG chart of `series` under `title` to `path`.
pub(crate) fn write_svg(path: &Path, title: &str, series: &[Series<'_>]) -> anyhow::Result<()> {
    let svg = render_svg(title, series)?;
    std::fs::write(path, svg).with_context(|| format!("cannot write the plot {}", path.display()))
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick label for `10^e` microseconds.
fn decade_label(e: i32) -> String {
    if e >= 0 {
        format!("{}", 10f64.powi(e))
    } else {
        format!("{:.*}", usize::try_from(-e).unwrap_or(0), 10f64.powi(e))
    }
}

/// A percentile label for the tail-stretched y value `y` (`q = 1 - 10^-y`).
fn percent_label(y: i32) -> String {
    match y {
        0 => "0%".into(),
        1 => "90%".into(),
        _ => {
            let nines = usize::try_from(y - 2).unwrap_or(0);
            format!(
                "99{}{}%",
                if nines > 0 { "." } else { "" },
                "9".repeat(nines)
            )
        }
    }
}

/// The SVG text of the chart.
pub(crate) fn render_svg(title: &str, series: &[Series<'_>]) -> anyhow::Result<String> {
    let sorted: Vec<(&str, Vec<u64>)> = series
        .iter()
        .filter(|s| !s.samples.is_empty())
        .map(|s| {
            let mut v = s.samples.to_vec();
            v.sort_unstable();
            (s.name, v)
        })
        .collect();
    anyhow::ensure!(!sorted.is_empty(), "nothing to plot: no samples");
    let us = |ns: u64| (ns.max(1) as f64) / 1000.0;
    let min_us = sorted
        .iter()
        .map(|(_, v)| us(v[0]))
        .fold(f64::INFINITY, f64::min);
    let max_us = sorted
        .iter()
        .map(|(_, v)| us(v[v.len() - 1]))
        .fold(0.0, f64::max);
    let x_lo = min_us.log10().floor() as i32;
    let x_hi = (max_us.log10().ceil() as i32).max(x_lo + 1);
    let most = sorted.iter().map(|(_, v)| v.len()).max().unwrap_or(1);
    let y_hi = ((most as f64).log10().ceil() as i32).clamp(2, 6);

    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x_us: f64| LEFT + (x_us.log10() - f64::from(x_lo)) / f64::from(x_hi - x_lo) * pw;
    let py = |y: f64| TOP + ph - (y / f64::from(y_hi)) * ph;

    let mut s = String::new();
    let w = &mut s;
    // `write!` into a String cannot fail.
    let _ = writeln!(
        w,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(w, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        w,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="17" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        esc(title)
    );
    let _ = writeln!(
        w,
        r##"<text x="{}" y="48" text-anchor="middle" fill="#555">cumulative distribution of round-trip times (tail stretched: each step up is one more nine)</text>"##,
        WIDTH / 2.0
    );
    // Grid and x ticks: decades labelled, 2x and 5x as light lines.
    for e in x_lo..=x_hi {
        let x = px(10f64.powi(e));
        let _ = writeln!(
            w,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ccc"/>"##,
            TOP + ph
        );
        let _ = writeln!(
            w,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + ph + 20.0,
            decade_label(e)
        );
        if e < x_hi {
            for m in [2.0, 5.0] {
                let xm = px(m * 10f64.powi(e));
                let _ = writeln!(
                    w,
                    r##"<line x1="{xm:.1}" y1="{TOP}" x2="{xm:.1}" y2="{:.1}" stroke="#eee"/>"##,
                    TOP + ph
                );
            }
        }
    }
    for y in 0..=y_hi {
        let yy = py(f64::from(y));
        let _ = writeln!(
            w,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ccc"/>"##,
            LEFT + pw
        );
        let _ = writeln!(
            w,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            yy + 4.0,
            percent_label(y)
        );
    }
    // The median line, dashed.
    let y50 = py(2f64.log10());
    let _ = writeln!(
        w,
        r##"<line x1="{LEFT}" y1="{y50:.1}" x2="{:.1}" y2="{y50:.1}" stroke="#999" stroke-dasharray="4 4"/>"##,
        LEFT + pw
    );
    let _ = writeln!(
        w,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#777">50%</text>"##,
        LEFT - 8.0,
        y50 + 4.0
    );
    // Axes and their titles.
    let _ = writeln!(
        w,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        w,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">round-trip time (µs, log scale)</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 20.0
    );
    let _ = writeln!(
        w,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">fraction of round trips at or below (percentile)</text>"#,
        TOP + ph / 2.0
    );
    // The curves.
    for (i, (name, v)) in sorted.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let n = v.len();
        let y_max = (n as f64).log10();
        // Points evenly spaced on the y scale, plus the maximum.
        let steps = 800usize;
        let mut idx: Vec<usize> = (0..=steps)
            .map(|k| {
                let y = y_max * k as f64 / steps as f64;
                let q = 1.0 - 10f64.powf(-y);
                ((q * n as f64) as usize).min(n - 1)
            })
            .collect();
        idx.push(n - 1);
        idx.dedup();
        let mut pts = String::new();
        for k in idx {
            let q = k as f64 / n as f64;
            let y = -(1.0 - q).max(1e-12).log10();
            let _ = write!(
                pts,
                "{:.1},{:.1} ",
                px(us(v[k])),
                py(y.min(f64::from(y_hi)))
            );
        }
        let _ = writeln!(
            w,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            pts.trim_end()
        );
        // Legend: top left, where a CDF leaves room.
        let p = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let ly = TOP + 20.0 + 20.0 * i as f64;
        let lx = LEFT + 14.0;
        let _ = writeln!(
            w,
            r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="3"/>"#,
            ly - 4.0,
            lx + 24.0,
            ly - 4.0
        );
        let _ = writeln!(
            w,
            r#"<text x="{:.1}" y="{ly:.1}">{}: p50 {:.2} µs, p99 {:.2} µs ({n} samples)</text>"#,
            lx + 32.0,
            esc(name),
            us(p(0.5)),
            us(p(0.99))
        );
    }
    let _ = writeln!(w, "</svg>");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_every_series_and_axes() {
        let a: Vec<u64> = (1..=1000).map(|i| 1000 + i * 10).collect();
        let b: Vec<u64> = (1..=500).map(|i| 5000 + i * 100).collect();
        let svg = render_svg(
            "t <&>",
            &[
                Series {
                    name: "a",
                    samples: &a,
                },
                Series {
                    name: "b",
                    samples: &b,
                },
            ],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert!(svg.contains("µs"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(render_svg("x", &[]).is_err());
        assert!(
            render_svg(
                "x",
                &[Series {
                    name: "a",
                    samples: &[]
                }]
            )
            .is_err()
        );
    }

    #[test]
    fn labels() {
        assert_eq!(decade_label(-1), "0.1");
        assert_eq!(decade_label(2), "100");
        assert_eq!(percent_label(0), "0%");
        assert_eq!(percent_label(2), "99%");
        assert_eq!(percent_label(4), "99.99%");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
