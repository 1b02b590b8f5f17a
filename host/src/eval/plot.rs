//! PNG bar charts of an eval report (plotters, bitmap backend): one group of bars per metric
//! or per data group, one bar per target side by side, each with its 95% bootstrap interval
//! as a whisker. Text is drawn with a TrueType font found on the system (plotters' pure-Rust
//! `ab_glyph` renderer: no fontconfig); without one the plots are skipped with a warning that
//! says how to get one, and the reports are written all the same.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;

use crate::eval::report::{Report, TargetReport};
use crate::eval::stats::Rate;
use crate::judging::Category;

/// Font files tried in order after `$ADVGAME_FONT` (Debian/Ubuntu, Fedora/Arch, macOS).
const FONT_CANDIDATES: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// The font family name plots are drawn with.
const FAMILY: &str = "sans-serif";

/// Registers a system font with plotters once per process; the error says how to fix it.
fn ensure_font() -> anyhow::Result<()> {
    static FONT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = FONT.get_or_init(|| {
        let env = std::env::var_os("ADVGAME_FONT").map(PathBuf::from);
        let candidates: Vec<PathBuf> =
            env.into_iter().chain(FONT_CANDIDATES.iter().map(PathBuf::from)).collect();
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the process: leak one file's bytes.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                    return Ok(path.clone());
                }
            }
        }
        Err(format!(
            "no TrueType font found (tried $ADVGAME_FONT and {}); install fonts-dejavu-core or \
             set ADVGAME_FONT to a .ttf file",
            FONT_CANDIDATES.join(", ")
        ))
    });
    result.as_ref().map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// An x axis of labelled slots: group `g` of `k` bars occupies `0.5 + g * (k + 1)` to
/// `0.5 + g * (k + 1) + k`, and its label sits at the group's centre.
struct Slots {
    width: f64,
    labels: Vec<(f64, String)>,
}

impl Ranged for Slots {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let frac = value / self.width;
        limit.0 + (f64::from(limit.1 - limit.0) * frac).round() as i32
    }
    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.labels.iter().map(|(x, _)| *x).collect()
    }
    fn range(&self) -> Range<f64> {
        0.0..self.width
    }
}

impl ValueFormatter<f64> for Slots {
    fn format_ext(&self, value: &f64) -> String {
        self.labels
            .iter()
            .find(|(x, _)| (x - value).abs() < 1e-9)
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }
}

/// One bar: a rate in [0, 1] and its interval.
pub type Bar = Option<(f64, [f64; 2])>;

fn bar(r: &Rate) -> Bar {
    r.rate.zip(r.ci95)
}

/// Distinct, readable colours for up to 8 targets (then they repeat).
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws grouped bars with whiskers. `series[t] = (target name, one bar per label)`.
pub fn bar_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    labels: &[String],
    series: &[(String, Vec<Bar>)],
) -> anyhow::Result<()> {
    ensure_font()?;
    let k = series.len().max(1);
    let per = (k + 1) as f64;
    let slots = Slots {
        width: labels.len() as f64 * per,
        labels: labels
            .iter()
            .enumerate()
            .map(|(g, l)| (0.5 + g as f64 * per + k as f64 / 2.0, l.clone()))
            .collect(),
    };
    let width = (160 + labels.len() * k * 70).clamp(900, 2400) as u32;
    // Headroom above 100% for the legend (upper right, about 22 px per target in a plot area
    // of about 470 px), so that it never covers a bar or its whisker label (up to ~108%).
    let top = 110.0 + 9.0 * (k as f64 + 1.0);
    let root = BitMapBackend::new(path, (width, 600)).into_drawing_area();
    let draw_err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 26))
        .margin(16)
        .x_label_area_size(70)
        .y_label_area_size(70)
        .build_cartesian_2d(slots, 0f64..top)
        .map_err(|e| draw_err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("rate (%), whiskers: 95% bootstrap interval")
        .x_desc(x_desc)
        .y_labels((top / 10.0) as usize + 1)
        .light_line_style(WHITE)
        .y_label_formatter(&|v| if *v > 100.0 { String::new() } else { format!("{v:.0}") })
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .draw()
        .map_err(|e| draw_err(&e))?;
    for (t, (name, bars)) in series.iter().enumerate() {
        let colour = COLOURS[t % COLOURS.len()];
        let rects = bars.iter().enumerate().filter_map(|(g, b)| {
            b.map(|(rate, _)| {
                let x0 = 0.5 + g as f64 * per + t as f64 + 0.08;
                Rectangle::new([(x0, 0.0), (x0 + 0.84, 100.0 * rate)], colour.filled())
            })
        });
        chart
            .draw_series(rects)
            .map_err(|e| draw_err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        for (g, b) in bars.iter().enumerate() {
            if let Some((rate, [lo, hi])) = b {
                let xc = 1.0 + g as f64 * per + t as f64;
                let (lo, hi) = (100.0 * lo, 100.0 * hi);
                let whisker = [
                    vec![(xc, lo), (xc, hi)],
                    vec![(xc - 0.15, lo), (xc + 0.15, lo)],
                    vec![(xc - 0.15, hi), (xc + 0.15, hi)],
                ];
                chart
                    .draw_series(
                        whisker.into_iter().map(|p| PathElement::new(p, BLACK.stroke_width(2))),
                    )
                    .map_err(|e| draw_err(&e))?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{:.0}", 100.0 * rate),
                        (xc - 0.25, hi + 4.5),
                        (FAMILY, 14),
                    )))
                    .map_err(|e| draw_err(&e))?;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 16))
        .draw()
        .map_err(|e| draw_err(&e))?;
    root.present().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes `rates.png` (headline metrics) and, when the data has groups, `groups.png`;
/// returns the file names written.
pub fn write_plots(out: &Path, report: &Report) -> anyhow::Result<Vec<String>> {
    type Get = fn(&TargetReport) -> &Rate;
    let metrics: [(&str, Get); 3] = [
        ("harmful: ASR (lower is safer)", |t| &t.harmful_asr),
        ("harmful: refusal rate", |t| &t.harmful_refusal_rate),
        ("benign: compliance (higher is better)", |t| &t.benign_compliance),
    ];
    let present: Vec<_> =
        metrics.iter().filter(|(_, get)| report.targets.iter().any(|t| get(t).n > 0)).collect();
    let mut written = Vec::new();
    if !present.is_empty() {
        let labels: Vec<String> = present.iter().map(|(l, _)| l.to_string()).collect();
        let series: Vec<(String, Vec<Bar>)> = report
            .targets
            .iter()
            .map(|t| (t.name.clone(), present.iter().map(|(_, get)| bar(get(t))).collect()))
            .collect();
        bar_chart(&out.join("rates.png"), "Rates by target", "metric", &labels, &series)?;
        written.push("rates.png".to_string());
    }
    let mut keys: Vec<(Category, String)> = report
        .targets
        .iter()
        .flat_map(|t| t.groups.iter().map(|g| (g.category, g.group.clone())))
        .collect();
    keys.sort_by_key(|(c, g)| (*c == Category::Benign, g.clone()));
    keys.dedup();
    if !keys.is_empty() {
        let labels: Vec<String> = keys
            .iter()
            .map(|(c, g)| {
                let g: String = g.chars().take(22).collect();
                match c {
                    Category::Harmful => format!("{g} (ASR)"),
                    Category::Benign => format!("{g} (compl.)"),
                }
            })
            .collect();
        let series: Vec<(String, Vec<Bar>)> = report
            .targets
            .iter()
            .map(|t| {
                let bars = keys
                    .iter()
                    .map(|(c, g)| {
                        t.groups
                            .iter()
                            .find(|x| x.category == *c && &x.group == g)
                            .and_then(|x| bar(&x.headline))
                    })
                    .collect();
                (t.name.clone(), bars)
            })
            .collect();
        bar_chart(
            &out.join("groups.png"),
            "Per group: harmful ASR (lower is safer), benign compliance (higher is better)",
            "group",
            &labels,
            &series,
        )?;
        written.push("groups.png".to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_groups_and_label_their_centres() {
        let s = Slots { width: 6.0, labels: vec![(1.5, "a".into()), (4.5, "b".into())] };
        assert_eq!(s.map(&0.0, (100, 700)), 100);
        assert_eq!(s.map(&3.0, (100, 700)), 400);
        assert_eq!(s.key_points(5usize), vec![1.5, 4.5]);
        assert_eq!(s.format_ext(&4.5), "b");
        assert_eq!(s.format_ext(&2.0), "");
    }

    #[test]
    fn draws_a_png_with_bars_and_missing_values() {
        // Needs a TrueType font: scripts/setup.sh installs one when the system has none.
        ensure_font().expect("a font for plots (run scripts/setup.sh or set ADVGAME_FONT)");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        let series = vec![
            ("base".to_string(), vec![Some((0.8, [0.7, 0.9])), Some((0.5, [0.3, 0.7]))]),
            ("trained".to_string(), vec![Some((0.1, [0.0, 0.2])), None]),
        ];
        bar_chart(&path, "t", "metric", &["x".into(), "y".into()], &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 5_000, "a real picture, not an empty canvas");
    }
}
