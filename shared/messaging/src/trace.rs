//! W3C trace context carried in AMQP headers across every hop.

use contracts::headers::{TRACEPARENT, TRACESTATE};
use opentelemetry::propagation::{Extractor, Injector};
use std::collections::BTreeMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct MapInjector<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapExtractor<'a>(&'a BTreeMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Writes the current span's context (`traceparent`, `tracestate`) into `headers`.
pub fn inject_current(headers: &mut BTreeMap<String, String>) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MapInjector(headers)));
}

/// The trace context for a message caused by `cause_headers`: the current span's when
/// OpenTelemetry is recording, else the cause's own `traceparent`/`tracestate`, so that a
/// trace id survives every hop even where no exporter is configured.
pub fn continue_from(headers: &mut BTreeMap<String, String>, cause_headers: &BTreeMap<String, String>) {
    inject_current(headers);
    if !headers.contains_key(TRACEPARENT) {
        for key in [TRACEPARENT, TRACESTATE] {
            if let Some(v) = cause_headers.get(key) {
                headers.insert(key.to_owned(), v.clone());
            }
        }
    }
}

/// The current span's context, or a new root `traceparent` when there is none: every
/// command a client sends starts or joins a trace.
pub fn inject_or_start(headers: &mut BTreeMap<String, String>) {
    inject_current(headers);
    headers.entry(TRACEPARENT.to_owned()).or_insert_with(|| {
        let trace = uuid::Uuid::new_v4().simple().to_string();
        let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
        format!("00-{trace}-{span}-01")
    });
}

/// The 32-hex-digit trace id of a `traceparent` value.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1).filter(|t| t.len() == 32)
}

/// Makes `span` a child of the trace that `headers` carry, if any.
pub fn set_parent_from(span: &tracing::Span, headers: &BTreeMap<String, String>) {
    if !headers.contains_key(contracts::headers::TRACEPARENT) {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&MapExtractor(headers)));
    if let Err(e) = span.set_parent(cx) {
        tracing::debug!(error = %e, "could not attach the incoming trace context");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_continues_from_the_cause_without_an_exporter() {
        let mut cause = BTreeMap::new();
        inject_or_start(&mut cause);
        let tp = cause[TRACEPARENT].clone();
        assert_eq!(trace_id(&tp).map(str::len), Some(32));
        let mut next = BTreeMap::new();
        continue_from(&mut next, &cause);
        assert_eq!(trace_id(&next[TRACEPARENT]), trace_id(&tp));
    }
}
