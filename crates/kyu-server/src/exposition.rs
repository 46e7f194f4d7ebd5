//! Writing gauges in the Prometheus text format (version 0.0.4), for the
//! values computed at scrape time. The recorder renders its own metrics;
//! this writes the rest in the same format.

use std::fmt::Write;

/// Text in the exposition format, one metric family at a time.
#[derive(Default)]
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a gauge family: its HELP and TYPE lines.
    pub(crate) fn gauge(&mut self, name: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} gauge");
    }

    /// One sample of the family started last.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// Ends a family (a blank line, as the recorder writes).
    pub(crate) fn end(&mut self) {
        self.text.push('\n');
    }

    pub(crate) fn into_string(self) -> String {
        self.text
    }
}

/// A label value as the format wants it: backslash, double quote and line
/// feed escaped (queue, kind and schedule names may hold any of them).
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        e.gauge("kyu_jobs", "Jobs\nby state.");
        e.sample(
            "kyu_jobs",
            &[("queue", "a\"b\\c\nd"), ("state", "failed")],
            3.0,
        );
        e.end();
        assert_eq!(
            e.into_string(),
            "# HELP kyu_jobs Jobs\\nby state.\n# TYPE kyu_jobs gauge\n\
             kyu_jobs{queue=\"a\\\"b\\\\c\\nd\",state=\"failed\"} 3\n\n"
        );
    }
}
