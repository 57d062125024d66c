//! Training curves from `metrics.jsonl`, drawn to `curves.svg` and `curves.png` in the run
//! directory: training loss (and validation loss) per step, the learning rate, and
//! validation BLEU / ROUGE-L when present. Text needs a TrueType font: a system
//! DejaVu/Liberation font is used when one is found; without one the curves are drawn
//! without labels.

use crate::error::{Result, TrainError};
use crate::metrics_log::{METRICS_FILE, Record, read_records};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const PLOT_SVG: &str = "curves.svg";
pub const PLOT_PNG: &str = "curves.png";
const SIZE: (u32, u32) = (1200, 400);

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Registers a system font once; false when none was found.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        FONT_PATHS.iter().any(|p| match std::fs::read(p) {
            Ok(bytes) => plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(bytes.into_boxed_slice()),
            )
            .is_ok(),
            Err(_) => false,
        })
    })
}

struct Series {
    name: &'static str,
    points: Vec<(f64, f64)>,
    color: RGBColor,
}

struct Panel {
    title: &'static str,
    series: Vec<Series>,
}

fn panels(records: &[Record]) -> Vec<Panel> {
    let train = |f: fn(&crate::metrics_log::TrainRecord) -> f64| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter_map(|r| {
                if let Record::Train(t) = r {
                    Some((t.step as f64, f(t)))
                } else {
                    None
                }
            })
            .collect()
    };
    let valid = |f: fn(&crate::metrics_log::ValidRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter_map(|r| {
                if let Record::Valid(v) = r {
                    f(v).map(|y| (v.step as f64, y))
                } else {
                    None
                }
            })
            .collect()
    };
    let mut out = vec![
        Panel {
            title: "loss",
            series: vec![
                Series {
                    name: "train",
                    points: train(|t| t.loss),
                    color: BLUE,
                },
                Series {
                    name: "valid",
                    points: valid(|v| Some(v.loss)),
                    color: RED,
                },
            ],
        },
        Panel {
            title: "learning rate",
            series: vec![Series {
                name: "lr",
                points: train(|t| t.lr),
                color: BLACK,
            }],
        },
    ];
    let bleu = valid(|v| v.bleu);
    let rouge = valid(|v| v.rouge_l);
    if !bleu.is_empty() || !rouge.is_empty() {
        out.push(Panel {
            title: "validation",
            series: vec![
                Series {
                    name: "BLEU",
                    points: bleu,
                    color: GREEN,
                },
                Series {
                    name: "ROUGE-L",
                    points: rouge,
                    color: MAGENTA,
                },
            ],
        });
    }
    out
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    text: bool,
) -> std::result::Result<(), String> {
    let all: Vec<(f64, f64)> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.1.is_finite())
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    let (x0, x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = ((y1 - y0) * 0.05).max(1e-12);
    let mut builder = ChartBuilder::on(area);
    builder.margin(10);
    if text {
        builder
            .caption(panel.title, ("sans-serif", 18))
            .x_label_area_size(30)
            .y_label_area_size(60);
    }
    let mut chart = builder
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if !text {
        mesh.disable_x_mesh()
            .disable_y_mesh()
            .x_labels(0)
            .y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for s in panel.series.iter().filter(|s| !s.points.is_empty()) {
        // Sparse series (validation) also get markers, so a single point is visible.
        if s.points.len() <= 50 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, s.color.filled())))
                .map_err(|e| e.to_string())?;
        }
        let drawn = chart
            .draw_series(LineSeries::new(s.points.clone(), s.color))
            .map_err(|e| e.to_string())?;
        if text {
            let color = s.color;
            drawn
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn draw_all<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[Panel],
    text: bool,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel, text)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws `run_dir/metrics.jsonl` to `curves.svg` and `curves.png`; returns their paths.
pub fn plot_run(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let records = read_records(&run_dir.join(METRICS_FILE))?;
    if records.is_empty() {
        return Err(TrainError::Plot(format!(
            "{}: no metrics to plot",
            run_dir.join(METRICS_FILE).display()
        )));
    }
    let panels = panels(&records);
    let text = font_available();
    let svg = run_dir.join(PLOT_SVG);
    draw_all(
        SVGBackend::new(&svg, SIZE).into_drawing_area(),
        &panels,
        text,
    )
    .map_err(TrainError::Plot)?;
    let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw_all(
        BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area(),
        &panels,
        text,
    )
    .map_err(TrainError::Plot)?;
    let png_path = run_dir.join(PLOT_PNG);
    write_png(&png_path, &buf, SIZE)?;
    Ok(vec![svg, png_path])
}

fn write_png(path: &Path, rgb: &[u8], (w, h): (u32, u32)) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| TrainError::Plot(format!("{}: {e}", path.display())))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| TrainError::Plot(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_log::{MetricsLog, TrainRecord, ValidRecord};

    #[test]
    fn draws_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path(), 0).unwrap();
        for s in 1..=20u64 {
            let loss = 5.0 / s as f64;
            log.append(&Record::Train(TrainRecord {
                step: s,
                epoch: 0,
                lr: 1e-3,
                loss,
                accuracy: 0.1,
                tokens: 100,
                tokens_per_s: 1e3,
                grad_norm: 1.0,
                elapsed_s: s as f64,
                comm_s: None,
            }))
            .unwrap();
        }
        log.append(&Record::Valid(ValidRecord {
            step: 10,
            loss: 1.0,
            accuracy: 0.5,
            bleu: Some(3.0),
            rouge_l: Some(9.0),
            examples: 4,
        }))
        .unwrap();
        let files = plot_run(dir.path()).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        let png = std::fs::read(&files[1]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(plot_run(tempfile::tempdir().unwrap().path()).is_err());
    }
}
