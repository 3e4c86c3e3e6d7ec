//! A released result as an SVG chart: one horizontal bar panel per metric, groups ranked by
//! their released (noisy) value, each bar with its interval as an error bar. Self-contained SVG
//! 1.1, no scripts, no external fonts.

use std::fmt::Write;

use strongroom::output_gate::release::ReleasedTable;

/// Most bars drawn per metric; the rest are summarized in a note.
pub(crate) const MAX_BARS: usize = 25;

const WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 300.0;
const VALUE_WIDTH: f64 = 110.0;
const BAR_HEIGHT: f64 = 18.0;
const BAR_GAP: f64 = 6.0;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn short(value: f64) -> String {
    let a = value.abs();
    if a >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if a >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// The SVG text of a chart of `released`, titled `title`.
pub(crate) fn released_svg(title: &str, released: &ReleasedTable) -> String {
    let mut body = String::new();
    let mut y = 84.0;
    for metric in &released.metrics {
        let mut groups: Vec<_> = metric.groups.iter().collect();
        groups.sort_by(|a, b| b.value.total_cmp(&a.value));
        let shown = groups.len().min(MAX_BARS);
        let _ = write!(
            body,
            r#"<text x="16" y="{y}" font-size="15" font-weight="bold">{} ({}) by {}</text>"#,
            escape(&metric.name),
            escape(&metric.kind),
            escape(&metric.key.join(" x "))
        );
        y += 10.0;
        let max = groups
            .iter()
            .take(shown)
            .map(|g| g.value.max(g.high).max(0.0))
            .fold(0.0f64, f64::max);
        let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 32.0;
        let x = |v: f64| {
            LABEL_WIDTH
                + 16.0
                + if max > 0.0 {
                    v.max(0.0) / max * span
                } else {
                    0.0
                }
        };
        let confidence = released.confidence * 100.0;
        for g in groups.iter().take(shown) {
            let w = (x(g.value) - x(0.0)).max(1.0);
            let (low, high) = (x(g.low), x(g.high));
            let mid = y + BAR_HEIGHT / 2.0;
            let label = escape(&g.labels.join(" / "));
            let _ = write!(
                body,
                r##"<text x="{lx}" y="{ty}" font-size="12" text-anchor="end">{label}</text><rect x="{bx}" y="{y}" width="{w:.1}" height="{BAR_HEIGHT}" fill="#3b6ea5"><title>{label}: {v:.4}, {confidence:.0}% interval {lo:.4} to {hi:.4} ({e:.0} entities)</title></rect><path class="interval" d="M{low:.1} {mid}H{high:.1}M{low:.1} {t1}V{t2}M{high:.1} {t1}V{t2}" stroke="#222" stroke-width="1.2" fill="none"/><text x="{vx:.1}" y="{ty}" font-size="12">{vs}</text>"##,
                lx = LABEL_WIDTH + 8.0,
                ty = y + 13.0,
                bx = x(0.0),
                v = g.value,
                lo = g.low,
                hi = g.high,
                e = g.entities,
                t1 = mid - 4.0,
                t2 = mid + 4.0,
                vx = (x(0.0) + w).max(high) + 6.0,
                vs = short(g.value),
            );
            y += BAR_HEIGHT + BAR_GAP;
        }
        let mut notes = Vec::new();
        if groups.len() > shown {
            notes.push(format!(
                "top {shown} of {} groups shown (all are in the CSV)",
                groups.len()
            ));
        }
        if metric.suppressed_groups > 0 {
            notes.push(format!(
                "{} group(s) under {} entities suppressed",
                metric.suppressed_groups, released.threshold
            ));
        }
        if groups.is_empty() {
            notes.push("no group released".into());
        }
        // A mean's noise depends on its group's count: its intervals say it.
        notes.push(if metric.kind == "mean" {
            format!("lines: {confidence:.0}% intervals")
        } else {
            format!(
                "lines: {confidence:.0}% intervals; noise std {}",
                escape(&short(metric.value_noise_std))
            )
        });
        let _ = write!(
            body,
            r##"<text x="16" y="{ty}" font-size="11" fill="#555">{}</text>"##,
            escape(&notes.join("; ")),
            ty = y + 12.0
        );
        y += 44.0;
    }
    let height = y + 10.0;
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="16" y="28" font-size="16" font-weight="bold">{}</text>
<text x="16" y="48" font-size="11" fill="#555">released by the output gate: {}, groups under {} entities suppressed, cost rho {}</text>
{body}
</svg>
"##,
        escape(title),
        escape(&released.mechanism),
        released.threshold,
        escape(&released.cost_rho)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom::output_gate::release::{ReleasedGroup, ReleasedMetric};

    fn table(groups: usize) -> ReleasedTable {
        ReleasedTable {
            mechanism: "gaussian".into(),
            threshold: 50,
            confidence: 0.95,
            cost_rho: "0.5".into(),
            remaining_rho: "0.5".into(),
            metrics: vec![ReleasedMetric {
                name: "spend".into(),
                kind: "sum".into(),
                key: vec!["mcc_group".into()],
                groups: (0..groups)
                    .map(|i| ReleasedGroup {
                        labels: vec![format!("Group <{i}> & co")],
                        value: i as f64 * 10.0,
                        low: i as f64 * 10.0 - 4.0,
                        high: i as f64 * 10.0 + 4.0,
                        entities: 60.0,
                    })
                    .collect(),
                suppressed_groups: 2,
                value_noise_std: 3.5,
                entities_noise_std: 1.0,
            }],
        }
    }

    #[test]
    fn bars_are_ranked_escaped_and_capped() {
        let svg = released_svg("Spend & more", &table(30));
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("Spend &amp; more"));
        assert!(svg.contains("Group &lt;29&gt; &amp; co"));
        assert!(!svg.contains("<29>"));
        assert_eq!(svg.matches("<rect x=").count(), MAX_BARS);
        assert_eq!(svg.matches(r#"<path class="interval""#).count(), MAX_BARS);
        assert!(svg.contains("95% interval 286.0000 to 294.0000"));
        // Largest first: group 29 is drawn above group 28.
        let (a, b) = (
            svg.find("Group &lt;29&gt;").expect("29"),
            svg.find("Group &lt;28&gt;").expect("28"),
        );
        assert!(a < b);
        assert!(svg.contains("top 25 of 30 groups"));
        assert!(svg.contains("2 group(s) under 50 entities suppressed"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
