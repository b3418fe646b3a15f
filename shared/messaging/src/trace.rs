//! W3C trace context carried in AMQP headers across every hop.

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
