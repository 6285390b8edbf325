//! The dashboard's plots, as SVG drawn by `plotters`: held-out reward per skill per version,
//! results per night (accepted, and rejected by reason), active hosts and credit per night.

use super::metrics::Metrics;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (720, 360);

/// Colours for series, in order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(44, 160, 44),
];
const ACCEPTED: RGBColor = RGBColor(44, 160, 44);

/// The plots' files, with their titles, as [`write_all`] writes them under `plots/`.
pub const PLOTS: [(&str, &str); 4] = [
    ("reward.svg", "Held-out reward of each global version"),
    (
        "results.svg",
        "Results per night: accepted, and rejected by reason",
    ),
    ("hosts.svg", "Active hosts per night"),
    ("credit.svg", "Credit granted per night"),
];

/// Writes every plot of `metrics` into `dir`.
pub fn write_all(metrics: &Metrics, dir: &Path) -> Result<()> {
    reward(metrics, &dir.join(PLOTS[0].0))?;
    results(metrics, &dir.join(PLOTS[1].0))?;
    let nights: Vec<&str> = metrics.nights.iter().map(|n| n.night.as_str()).collect();
    let hosts: Vec<f64> = metrics
        .nights
        .iter()
        .map(|n| n.active_hosts as f64)
        .collect();
    bars(&dir.join(PLOTS[2].0), "active hosts", &nights, &hosts)?;
    let credit: Vec<f64> = metrics.nights.iter().map(|n| n.credit).collect();
    bars(
        &dir.join(PLOTS[3].0),
        "credit (cobblestones)",
        &nights,
        &credit,
    )
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

/// One line per skill: reward against version.
fn reward(metrics: &Metrics, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max_version = metrics
        .skills
        .iter()
        .map(|s| s.current_version)
        .max()
        .unwrap_or(0)
        .max(1);
    let max_reward = metrics
        .skills
        .iter()
        .flat_map(|s| s.versions.iter().map(|v| v.reward))
        .fold(0f64, f64::max)
        .max(1e-6);
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0u64..max_version, 0f64..max_reward * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("global version")
        .y_desc("held-out reward")
        .draw()
        .map_err(err)?;
    for (i, skill) in metrics.skills.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points: Vec<(u64, f64)> = skill
            .versions
            .iter()
            .map(|v| (v.version, v.reward))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(skill.skill.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Stacked bars per night: accepted, then each rejection class, then client errors.
fn results(metrics: &Metrics, path: &Path) -> Result<()> {
    let mut classes: Vec<String> = metrics
        .nights
        .iter()
        .flat_map(|n| n.rejected.keys().cloned())
        .collect();
    classes.sort();
    classes.dedup();
    let mut series: Vec<(String, RGBColor, Vec<f64>)> = vec![(
        "accepted".into(),
        ACCEPTED,
        metrics.nights.iter().map(|n| n.accepted as f64).collect(),
    )];
    for (i, class) in classes.iter().enumerate() {
        series.push((
            format!("rejected: {class}"),
            PALETTE[(i + 1) % PALETTE.len()],
            metrics
                .nights
                .iter()
                .map(|n| n.rejected.get(class).copied().unwrap_or(0) as f64)
                .collect(),
        ));
    }
    series.push((
        "client error".into(),
        PALETTE[6],
        metrics.nights.iter().map(|n| n.errors as f64).collect(),
    ));
    let nights: Vec<&str> = metrics.nights.iter().map(|n| n.night.as_str()).collect();
    stacked(path, "results", &nights, &series)
}

/// One bar per night.
fn bars(path: &Path, label: &str, nights: &[&str], values: &[f64]) -> Result<()> {
    stacked(
        path,
        label,
        nights,
        &[(label.to_string(), PALETTE[0], values.to_vec())],
    )
}

/// Bars per night, the series stacked in order, with a legend when there are several.
fn stacked(
    path: &Path,
    y_desc: &str,
    nights: &[&str],
    series: &[(String, RGBColor, Vec<f64>)],
) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let n = nights.len().max(1);
    let top = (0..nights.len())
        .map(|i| series.iter().map(|s| s.2[i]).sum::<f64>())
        .fold(0f64, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top * 1.15)
        .map_err(err)?;
    let labels: Vec<String> = nights.iter().map(|s| s.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("night (UTC)")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    let mut base = vec![0f64; nights.len()];
    for (name, colour, values) in series {
        let colour = *colour;
        let rects: Vec<Rectangle<(f64, f64)>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = i as f64;
                let r = Rectangle::new(
                    [(x - 0.3, base[i]), (x + 0.3, base[i] + v)],
                    colour.filled(),
                );
                base[i] += v;
                r
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}
