//! Bar charts drawn on the server as inline SVG: no chart library, no
//! script, no style attribute (the Content-Security-Policy forbids inline
//! styles; colours are SVG presentation attributes). Each bar carries a
//! `<title>` with its time and figures (a tooltip, and what a screen
//! reader or a test reads); the chart as a whole has a label and a
//! summary line under it.

use maud::{html, Markup};

use super::rates::{Series, Tally};

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 160.0;
/// Room for the y-axis labels at the left and the x-axis labels below.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;

const COMPLETED: &str = "#3b8a4f";
const FAILED: &str = "#c0392b";
const AXIS: &str = "#8a93a3";

/// The smallest of 1, 2, 5 × 10^k at or above `n` (an axis top a reader can read).
fn nice_top(n: u64) -> u64 {
    let mut unit = 1u64;
    loop {
        for m in [1, 2, 5] {
            if unit.saturating_mul(m) >= n {
                return unit.saturating_mul(m);
            }
        }
        unit = unit.saturating_mul(10);
    }
}

/// A bucket's time span as its title says it: `12:05 UTC` for a minute,
/// `12:00–12:15 UTC` for longer.
pub(crate) fn span(series: &Series, i: usize) -> String {
    let start = series.start + series.step * i as i32;
    if series.step <= chrono::Duration::minutes(1) {
        format!("{} UTC", start.format("%H:%M"))
    } else {
        format!(
            "{}–{} UTC",
            start.format("%H:%M"),
            (start + series.step).format("%H:%M")
        )
    }
}

/// The title of bucket `i`: its span and figures.
pub(crate) fn bar_title(series: &Series, i: usize, t: &Tally) -> String {
    format!(
        "{}: {} completed, {} failed",
        span(series, i),
        t.completed,
        t.failed
    )
}

/// Stacked bars (completed below, failed attempts above), one per bucket,
/// labelled every `label_every` buckets. `id` names the chart's title element.
pub(crate) fn bars(id: &str, label: &str, series: &Series, label_every: usize) -> Markup {
    let n = series.buckets.len().max(1);
    let top = nice_top(
        series
            .buckets
            .iter()
            .map(|t| t.completed + t.failed)
            .max()
            .unwrap_or(0)
            .max(1),
    );
    let plot_h = HEIGHT - TOP - BOTTOM;
    let plot_w = WIDTH - LEFT;
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.8).max(1.0);
    let y_of = |v: u64| TOP + plot_h - plot_h * v as f64 / top as f64;
    let total = series.total();
    let title_id = format!("{id}-title");
    html! {
        figure.chart {
            svg id=(id) viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width="100%" role="img"
                aria-labelledby=(title_id) preserveAspectRatio="xMinYMin meet"
                data-completed=(total.completed) data-failed=(total.failed) {
                title id=(title_id) { (label) ": " (total.completed) " completed, " (total.failed) " failed" }
                // The axes and the top and middle figures.
                line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + plot_h) stroke=(AXIS) stroke-width="1" {}
                line x1=(LEFT) y1=(TOP + plot_h) x2=(WIDTH) y2=(TOP + plot_h) stroke=(AXIS) stroke-width="1" {}
                @for v in [top, top / 2] {
                    line x1=(LEFT) y1=(y_of(v)) x2=(WIDTH) y2=(y_of(v)) stroke="#e3e7ee" stroke-width="1" {}
                    text x=(LEFT - 4.0) y=(y_of(v) + 4.0) text-anchor="end" font-size="11" fill=(AXIS) { (v) }
                }
                text x=(LEFT - 4.0) y=(TOP + plot_h + 4.0) text-anchor="end" font-size="11" fill=(AXIS) { "0" }
                @for (i, t) in series.buckets.iter().enumerate() {
                    @let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                    g {
                        title { (bar_title(series, i, t)) }
                        // Full height and transparent: the tooltip shows over the whole slot.
                        rect x=(LEFT + slot * i as f64) y=(TOP) width=(slot) height=(plot_h) fill="transparent" {}
                        @if t.completed > 0 {
                            rect x=(x) y=(y_of(t.completed)) width=(bar_w)
                                height=(y_of(0) - y_of(t.completed)) fill=(COMPLETED) {}
                        }
                        @if t.failed > 0 {
                            rect x=(x) y=(y_of(t.completed + t.failed)) width=(bar_w)
                                height=(y_of(t.completed) - y_of(t.completed + t.failed)) fill=(FAILED) {}
                        }
                    }
                    @if i % label_every == 0 {
                        text x=(LEFT + slot * i as f64) y=(HEIGHT - 4.0) font-size="11" fill=(AXIS) {
                            ((series.start + series.step * i as i32).format("%H:%M"))
                        }
                    }
                }
            }
            figcaption {
                span.swatch.completed {} " completed " strong { (total.completed) }
                " · " span.swatch.failed {} " failed attempts (retrying or failed for good) " strong { (total.failed) }
                " · " (label) ", times UTC"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_top(1), 1);
        assert_eq!(nice_top(3), 5);
        assert_eq!(nice_top(7), 10);
        assert_eq!(nice_top(11), 20);
        assert_eq!(nice_top(4_001), 5_000);
    }
}
