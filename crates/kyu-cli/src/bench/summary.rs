//! The runs of one workload summed up (median, min and max of each figure,
//! as the peer harness's summarize.mjs computes them), and the lines people
//! read.

use serde_json::{json, Map, Value};

use super::{round, Workload};

/// The figures summarized, with the decimals they are given to.
fn metrics(w: Workload) -> &'static [(&'static str, i32)] {
    match w {
        Workload::W1 => &[
            ("enqueue_per_s", 0),
            ("process_per_s", 0),
            ("enqueue_s", 3),
            ("process_s", 3),
            ("worker_max_rss_mib", 1),
            ("server_max_rss_mib", 1),
        ],
        Workload::W2 => &[
            ("p50_ms", 2),
            ("p99_ms", 2),
            ("max_ms", 2),
            ("mean_ms", 2),
            ("worker_max_rss_mib", 1),
            ("server_max_rss_mib", 1),
        ],
    }
}

/// Median (the mean of the middle two for an even count), min and max of the
/// numbers among `xs`, or `None` when there are none (every W2 run saturated).
fn spread(xs: impl Iterator<Item = Option<f64>>, digits: i32) -> Option<Value> {
    let mut v: Vec<f64> = xs.flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    };
    Some(json!({
        "median": round(median, digits),
        "min": v[0],
        "max": v[v.len() - 1],
    }))
}

/// The summary line of workload `w` over its run rows: the rows' common keys,
/// `"summary": true`, `runs`, and `{median, min, max}` for each figure.
pub(super) fn summarize(w: Workload, rows: &[Value], extra: Map<String, Value>) -> Value {
    let first = rows.first().cloned().unwrap_or_default();
    let mut out = Map::new();
    for key in [
        "system",
        "version",
        "backend",
        "workload",
        "via",
        "config",
        "n",
        "concurrency",
        "bulk_api",
        "bulk_chunk",
        "single_api",
        "http_batch",
        "http_pollers",
        "interval_ms",
        "warmup",
        "preload",
        "settings",
    ] {
        if let Some(v) = first.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    out.insert("summary".into(), true.into());
    out.insert("runs".into(), rows.len().into());
    for (key, digits) in metrics(w) {
        // A figure of one mode only (the server's memory: --via http; the
        // worker process's: --via library) is left out of the other's.
        if rows.iter().all(|r| r.get(*key).is_none()) {
            continue;
        }
        let s = spread(rows.iter().map(|r| r[*key].as_f64()), *digits);
        out.insert((*key).into(), s.unwrap_or(Value::Null));
    }
    let flagged = |k: &str| rows.iter().filter(|r| r[k] == true).count();
    out.insert("timed_out_runs".into(), flagged("timed_out").into());
    if w == Workload::W2 {
        out.insert("saturated_runs".into(), flagged("saturated").into());
    }
    out.extend(extra);
    Value::Object(out)
}

/// `12345.6` as `12,346`.
pub(super) fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        thousands(x)
    }
}

/// One run's line for people.
pub(super) fn run_line(w: Workload, run: u32, row: &Value) -> String {
    let f = |k: &str| row[k].as_f64().unwrap_or(0.0);
    let mut line = run_figures(w, run, row, f);
    if f("preload") > 0.0 {
        line += &format!(
            ", after a preload of {} completed jobs",
            thousands(f("preload"))
        );
    }
    line
}

fn run_figures(w: Workload, run: u32, row: &Value, f: impl Fn(&str) -> f64) -> String {
    match w {
        Workload::W1 => {
            let mut line = format!(
                "W1 run {run}: enqueue {} jobs/s, process {} jobs/s ({} jobs in {:.3} s)",
                thousands(f("enqueue_per_s")),
                thousands(f("process_per_s")),
                thousands(f("completed")),
                f("process_s"),
            );
            if row["timed_out"] == true {
                line += &format!(" CUT OFF: {} of {} completed", f("completed"), f("n"));
            }
            line
        }
        Workload::W2 if row["saturated"] == true => format!(
            "W2 run {run}: saturated ({})",
            row["note"].as_str().unwrap_or("")
        ),
        Workload::W2 => format!(
            "W2 run {run}: p50 {} ms, p99 {} ms, max {} ms ({} jobs, {} ms apart)",
            ms(f("p50_ms")),
            ms(f("p99_ms")),
            ms(f("max_ms")),
            thousands(f("n")),
            f("interval_ms"),
        ),
    }
}

/// The summary's line for people: `median (min–max)` of the headline figures.
pub(super) fn summary_line(w: Workload, s: &Value) -> String {
    let runs = s["runs"].as_u64().unwrap_or(0);
    let fig = |k: &str, fmt: fn(f64) -> String| match (
        s[k]["median"].as_f64(),
        s[k]["min"].as_f64(),
        s[k]["max"].as_f64(),
    ) {
        (Some(m), Some(lo), Some(hi)) => format!("{} ({}–{})", fmt(m), fmt(lo), fmt(hi)),
        _ => "–".to_string(),
    };
    match w {
        Workload::W1 => format!(
            "W1 median of {runs} (min–max): enqueue {} jobs/s, process {} jobs/s",
            fig("enqueue_per_s", thousands),
            fig("process_per_s", thousands),
        ),
        Workload::W2 => {
            let mut line = format!(
                "W2 median of {runs} (min–max): p50 {} ms, p99 {} ms, max {} ms",
                fig("p50_ms", ms),
                fig("p99_ms", ms),
                fig("max_ms", ms),
            );
            let saturated = s["saturated_runs"].as_u64().unwrap_or(0);
            if saturated > 0 {
                line += &format!(" ({saturated} saturated runs left out)");
            }
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_or_the_mean_of_the_middle_two() {
        let s = spread([Some(3.0), None, Some(1.0), Some(2.0)].into_iter(), 0).unwrap();
        assert_eq!(s, json!({"median": 2.0, "min": 1.0, "max": 3.0}));
        let s = spread([Some(4.0), Some(1.0)].into_iter(), 1).unwrap();
        assert_eq!(s, json!({"median": 2.5, "min": 1.0, "max": 4.0}));
        assert_eq!(spread([None, None].into_iter(), 0), None);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
