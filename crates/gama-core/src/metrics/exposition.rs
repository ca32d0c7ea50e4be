//! The Prometheus text exposition format (version 0.0.4): latency series as
//! summaries with quantiles, plus gauges.

use std::fmt::Write;

use super::registry::Summary;

/// A gauge: name, help, value.
pub type Gauge = (&'static str, &'static str, f64);

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `gama_operation_duration_seconds` for every series, then the gauges.
pub fn render(summaries: &[Summary], gauges: &[Gauge]) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP gama_operation_duration_seconds Duration of operations measured by gama-native.\n",
    );
    out.push_str("# TYPE gama_operation_duration_seconds summary\n");
    for s in summaries {
        let labels = format!(
            "component=\"{}\",operation=\"{}\"",
            escape(&s.component),
            escape(&s.operation)
        );
        for (q, ms) in [("0.5", s.p50_ms), ("0.95", s.p95_ms), ("0.99", s.p99_ms)] {
            let _ = writeln!(
                out,
                "gama_operation_duration_seconds{{{labels},quantile=\"{q}\"}} {}",
                ms / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "gama_operation_duration_seconds_sum{{{labels}}} {}",
            s.total_ms / 1000.0
        );
        let _ = writeln!(
            out,
            "gama_operation_duration_seconds_count{{{labels}}} {}",
            s.count
        );
    }
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_summaries_and_gauges() {
        let s = Summary {
            component: "batch".into(),
            operation: "EXTRACT_\"x\"".into(),
            count: 3,
            mean_ms: 2.0,
            p50_ms: 2.0,
            p95_ms: 3.0,
            p99_ms: 3.0,
            max_ms: 3.0,
            total_ms: 6.0,
            share: 1.0,
        };
        let text = render(&[s], &[("gama_cache_hit_ratio", "Hit ratio.", 0.5)]);
        assert!(text.contains("gama_operation_duration_seconds{component=\"batch\",operation=\"EXTRACT_\\\"x\\\"\",quantile=\"0.95\"} 0.003\n"));
        assert!(text.contains("gama_operation_duration_seconds_count{component=\"batch\",operation=\"EXTRACT_\\\"x\\\"\"} 3\n"));
        assert!(text.contains("# TYPE gama_cache_hit_ratio gauge\ngama_cache_hit_ratio 0.5\n"));
    }
}
