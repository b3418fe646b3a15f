//! The metrics, their names and where they are shown (issue 13 §6): every metric the code
//! records follows the Prometheus conventions (counters end in `_total`, nothing else does,
//! histograms name their unit) and is listed in the README's metrics table; every metric the
//! Grafana dashboard (`deploy/grafana/insurance-overview.json`) queries is one the code
//! records, or the broker's own (`rabbitmq_…`). No servers needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
        let p = entry.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Metric name → kind (`counter`, `gauge`, `histogram`), from `metrics::<kind>!("name"` calls.
fn recorded() -> BTreeMap<String, String> {
    let mut files = Vec::new();
    for dir in ["shared", "services", "simulators"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut out = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        for kind in ["counter", "gauge", "histogram"] {
            let needle = format!("metrics::{kind}!(");
            let mut rest = text.as_str();
            while let Some(at) = rest.find(&needle) {
                rest = &rest[at + needle.len()..];
                let args = rest.trim_start();
                if let Some(quoted) = args.strip_prefix('"') {
                    let name = &quoted[..quoted.find('"').expect("a closing quote")];
                    out.insert(name.to_owned(), kind.to_owned());
                }
            }
        }
    }
    out
}

/// The metric names an expression reads: identifiers outside label matchers, `by (…)`,
/// ranges and strings, that are not PromQL functions or keywords.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut cleaned = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            '{' if !in_string => depth_brace += 1,
            '}' if !in_string => depth_brace -= 1,
            '[' if !in_string => depth_bracket += 1,
            ']' if !in_string => depth_bracket -= 1,
            _ if in_string || depth_brace > 0 || depth_bracket > 0 => {}
            _ => cleaned.push(c),
        }
    }
    // Drop `by (…)` groupings.
    while let Some(at) = cleaned.find("by (") {
        let end = cleaned[at..].find(')').expect("a closing paren") + at;
        cleaned.replace_range(at..=end, "");
    }
    let functions = [
        "sum",
        "max",
        "min",
        "rate",
        "histogram_quantile",
        "avg",
        "count",
        "increase",
    ];
    let mut out = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = cleaned.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() || *c == '_' {
            word.push(*c);
        }
        let end = i + 1 == chars.len() || !(chars[i + 1].is_ascii_alphanumeric() || chars[i + 1] == '_');
        if end && !word.is_empty() {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            let is_call = next == Some(&'(');
            if !is_call
                && !functions.contains(&word.as_str())
                && !word.chars().all(|c| c.is_ascii_digit() || c == '.')
            {
                out.push(word.clone());
            }
            word.clear();
        }
    }
    out
}

#[test]
fn metric_names_follow_the_prometheus_conventions() {
    let m = recorded();
    assert!(m.len() >= 30, "found only {m:?}");
    for (name, kind) in &m {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}: snake_case"
        );
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name} must end in _total"),
            "histogram" => assert!(name.ends_with("_seconds"), "histogram {name} must name its unit"),
            _ => assert!(!name.ends_with("_total"), "gauge {name} must not end in _total"),
        }
    }
}

#[test]
fn every_recorded_metric_is_listed_in_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("the README");
    let table = &readme[readme.find("### Metrics").expect("a metrics section")..];
    let names = recorded();
    let missing: Vec<&String> = names
        .keys()
        .filter(|n| !table.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the README's metrics table: {missing:?}"
    );
}

#[test]
fn the_dashboard_queries_only_metrics_that_exist() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/insurance-overview.json"))
        .expect("the dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let m = recorded();
    let mut seen = 0;
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            for name in metrics_in(expr) {
                seen += 1;
                let base = name.strip_suffix("_bucket").unwrap_or(&name);
                assert!(
                    m.contains_key(base) || name.starts_with("rabbitmq_"),
                    "panel '{}' queries '{name}', which nothing records",
                    panel["title"]
                );
            }
        }
    }
    assert!(seen >= 20, "only {seen} metrics read by the dashboard");
    // The issue's list, per line: freeze mode, backlog, queue depth, consumed / published /
    // parked, handler latency, outbox lag.
    for needed in [
        "freeze_mode",
        "freeze_backlog",
        "rabbitmq_queue_messages",
        "messages_consumed_total",
        "messages_published_total",
        "messages_parked_total",
        "handler_seconds_bucket",
        "outbox_lag_seconds",
    ] {
        assert!(text.contains(needed), "the dashboard shows no {needed}");
    }
}

#[test]
fn the_expression_reader_finds_metrics_and_skips_the_rest() {
    assert_eq!(
        metrics_in(
            r#"histogram_quantile(0.99, sum by (queue, le) (rate(handler_seconds_bucket{queue=~"$q"}[5m])))"#
        ),
        ["handler_seconds_bucket"]
    );
    assert_eq!(metrics_in("min(database_up)"), ["database_up"]);
}
