//! Traces across the hops (issue 13 §6): with the OTLP exporter of `platform::telemetry`
//! pointed at a local OTLP receiver (the collector's gRPC trace service, served by this test),
//! one trace spans a command (`enroll-person` handled by enrollment) and the consumption of the
//! event it caused (`person-enrolled` handled by card issuance): the trace context travels in
//! the messages' `traceparent` header through the broker. The services run in this process, so
//! one exporter carries both; each span names its queue.

use contracts::Line;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::services::Services;
use testkit::{TestEnv, wait_for};

#[derive(Debug, Clone)]
struct Seen {
    trace_id: Vec<u8>,
    name: String,
    attributes: BTreeMap<String, String>,
}

#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<Mutex<Vec<Seen>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("spans");
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let attributes = s
                        .attributes
                        .iter()
                        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            AnyValue::StringValue(v) => Some((kv.key.clone(), v.clone())),
                            _ => None,
                        })
                        .collect();
                    spans.push(Seen {
                        trace_id: s.trace_id,
                        name: s.name,
                        attributes,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test]
async fn one_trace_spans_a_command_its_event_and_the_event_s_consumer() {
    let receiver = Receiver::default();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        l.local_addr().expect("an address").port()
    };
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve(([127, 0, 0, 1], port).into()),
    );
    let _telemetry = platform::telemetry::init(
        "city",
        &platform::telemetry::TelemetrySettings {
            otlp_endpoint: Some(format!("http://127.0.0.1:{port}")),
            filter: "info,lapin=warn,tokio_postgres=warn".into(),
            ..Default::default()
        },
    )
    .expect("telemetry with OTLP export");

    let env = TestEnv::new();
    let enrollment = enrollment::build(enrollment::Settings {
        service: env.service_settings("enrollment"),
        region: "420100".into(),
    })
    .await
    .expect("enrollment builds");
    let card = card_issuance::build(card_issuance::Settings {
        service: env.service_settings("card-issuance"),
    })
    .await
    .expect("card-issuance builds");
    let mut services = Services::new();
    services.start(&env, enrollment).start(&env, card);
    let client = env.client().await;
    let r = testkit::send(
        &client,
        Line::Medical,
        "enrollment",
        "enroll-person",
        json!({"id_number": testkit::id_number(7), "name": "参保人7", "phone": testkit::phone(7),
               "category": "flexible", "insurance_types": ["employee_medical"], "effective_month": "2024-03"}),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");

    let names = env.names();
    let command_queue = names.command_queue("enrollment", Line::Medical);
    let events_queue = names.event_queue("card-issuance", Line::Medical);
    // The batch exporter sends every few seconds.
    let (command, consumed) = wait_for(
        "both hops exported in one trace",
        Duration::from_secs(30),
        || async {
            let spans = receiver.spans.lock().expect("spans").clone();
            let command = spans.iter().find(|s| {
                s.name == "message"
                    && s.attributes.get("queue") == Some(&command_queue)
                    && s.attributes.get("type").map(String::as_str) == Some("enrollment.enroll-person.v1")
            })?;
            let consumed = spans.iter().find(|s| {
                s.name == "message"
                    && s.attributes.get("queue") == Some(&events_queue)
                    && s.attributes.get("type").map(String::as_str) == Some("enrollment.person-enrolled.v1")
            })?;
            Some((command.clone(), consumed.clone()))
        },
    )
    .await;
    assert_eq!(command.trace_id.len(), 16);
    assert_eq!(
        command.trace_id, consumed.trace_id,
        "the event's consumer continues the command's trace: {command:?} {consumed:?}"
    );
    services.stop().await;
    server.abort();
}
