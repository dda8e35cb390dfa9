//! Hand-written inline SVG line charts for the HTML report: no JavaScript, no vendored
//! library, no network, and deterministic output (same data, same bytes), so a report
//! re-rendered from a saved result equals the original.

use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 42.0;

/// Series colours, in order.
pub const PALETTE: [&str; 6] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
];

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// What the x axis shows.
#[derive(Clone, Copy)]
pub enum XAxis {
    /// Seconds since the start.
    Seconds,
    /// The classic HDR percentile plot: x = log10(1 / (1 - q)), labelled 90%, 99%, 99.9%...
    Nines,
}

/// A chart with axes, grid, legend and one polyline per series.
pub fn line_chart(y_label: &str, x_axis: XAxis, series: &[Series]) -> String {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (x_max, y_max) = points.fold((0.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let x_max = match x_axis {
        XAxis::Seconds => x_max.max(1.0),
        XAxis::Nines => x_max.ceil().max(1.0),
    };
    let y_max = nice_ceiling(if y_max > 0.0 { y_max } else { 1.0 });
    let scale = Scale { x_max, y_max };
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\">",
        escape(y_label)
    );
    grid_and_y_labels(&mut svg, &scale);
    x_labels(&mut svg, &scale, x_axis);
    let _ = write!(
        svg,
        "<text class=\"axis-title\" x=\"{LEFT}\" y=\"{:.1}\">{}</text>",
        TOP - 14.0,
        escape(y_label)
    );
    for s in series {
        draw_series(&mut svg, &scale, s);
    }
    legend(&mut svg, series);
    svg.push_str("</svg>");
    svg
}

struct Scale {
    x_max: f64,
    y_max: f64,
}

impl Scale {
    fn x(&self, x: f64) -> f64 {
        LEFT + (x / self.x_max).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y / self.y_max).clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM)
    }
}

fn grid_and_y_labels(svg: &mut String, scale: &Scale) {
    for i in 0..=5 {
        let value = scale.y_max * f64::from(i) / 5.0;
        let y = scale.y(value);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            number(value)
        );
    }
}

fn x_labels(svg: &mut String, scale: &Scale, x_axis: XAxis) {
    let (ticks, title): (Vec<(f64, String)>, &str) = match x_axis {
        XAxis::Seconds => {
            let step = nice_ceiling(scale.x_max / 6.0).max(1.0);
            let count = (scale.x_max / step).floor() as u32;
            (
                (0..=count)
                    .map(|i| {
                        let x = step * f64::from(i);
                        (x, duration_label(x))
                    })
                    .collect(),
                "time since start",
            )
        }
        XAxis::Nines => (
            (0..=scale.x_max as u32)
                .map(|k| (f64::from(k), nines_label(k)))
                .collect(),
            "percentile",
        ),
    };
    let base = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\"/>",
        WIDTH - RIGHT
    );
    for (x, label) in ticks {
        let px = scale.x(x);
        let _ = write!(
            svg,
            "<line class=\"axis\" x1=\"{px:.1}\" y1=\"{base:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            base + 4.0,
            base + 17.0
        );
    }
    let _ = write!(
        svg,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{title}</text>",
        WIDTH - RIGHT,
        HEIGHT - 6.0
    );
}

fn draw_series(svg: &mut String, scale: &Scale, s: &Series) {
    let mut points = String::new();
    for &(x, y) in &s.points {
        let _ = write!(points, "{:.1},{:.1} ", scale.x(x), scale.y(y));
    }
    let dash = if s.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let _ = write!(
        svg,
        "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
        s.color,
        points.trim_end()
    );
    if let [(x, y)] = s.points.as_slice() {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
            scale.x(*x),
            scale.y(*y),
            s.color
        );
    }
}

fn legend(svg: &mut String, series: &[Series]) {
    let mut x = WIDTH - RIGHT;
    for s in series.iter().rev() {
        let width = 26.0 + 6.5 * s.label.chars().count() as f64;
        x -= width;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"14\" height=\"4\" rx=\"2\" fill=\"{}\"/><text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            TOP - 20.0,
            s.color,
            x + 18.0,
            TOP - 15.0,
            escape(&s.label)
        );
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `value`.
pub fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= value * (1.0 - 1e-9) {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// Axis numbers: no needless decimals.
pub fn number(value: f64) -> String {
    if value == 0.0 {
        "0".to_string()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        trim(format!("{value:.1}"))
    } else if value.abs() >= 1.0 {
        trim(format!("{value:.2}"))
    } else {
        trim(format!("{value:.3}"))
    }
}

fn trim(text: String) -> String {
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn duration_label(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// 0 -> 0%, 1 -> 90%, 2 -> 99%, 3 -> 99.9%, ...
pub fn nines_label(nines: u32) -> String {
    match nines {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        k => format!("99.{}%", "9".repeat(k as usize - 2)),
    }
}

/// HTML/XML text escaping.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_labels_read_as_percentiles() {
        let labels: Vec<String> = (0..5).map(nines_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn axis_maxima_are_round_numbers() {
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(1.7), 2.0);
        assert_eq!(nice_ceiling(230.0), 250.0);
    }
}
