//! The published contract: an AsyncAPI 3.0 document generated from the same JSON Schemas as
//! `schemas/` (DESIGN.md §3), so that an organisation outside the back office can talk to it
//! with nothing but this file. `asyncapi.json` holds the committed copy; the
//! `asyncapi_does_not_drift` test fails when it differs from what the types generate.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test -p contracts asyncapi_does_not_drift`.
//!
//! What the document says, and where it comes from:
//! - one channel per command (`{line}.<service>.<command>` on `insurance.commands`), per event
//!   (`{line}.<service>.<event>` on `insurance.events`), for the freeze events every service
//!   publishes, for control orders (`insurance.control`) and for replies (the sender's own
//!   queue, named in `reply_to`);
//! - one `send` operation per command with its `reply`, one `receive` operation per event;
//! - every payload's schema, the `ce-` headers, trace context, `x-channel` and `x-operator`,
//!   and the AMQP properties each message must carry (`x-amqp-properties`).
//!
//! The schemas are JSON Schema 2020-12 in `schemas/`; here their `$defs` are hoisted into
//! `components.schemas` (shared definitions once, a clash prefixed with its file's name) and
//! every `$ref` rewritten, so that the document is self-contained and uses only keywords that
//! AsyncAPI's schema format (a superset of draft 07) shares with 2020-12.

use crate::line::{Channel, Line};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// AMQP binding version of the AsyncAPI bindings used here.
const AMQP_BINDING: &str = "0.3.0";

/// The lines each service takes commands and publishes events on. A service whose schemas
/// appear without an entry here fails `document()`: a new service must say where it lives.
pub const SERVICE_LINES: &[(&str, &[Line])] = &[
    ("enrollment", &[Line::Medical, Line::Social]),
    ("collection", &[Line::Medical, Line::Social]),
    ("benefits", &[Line::Medical, Line::Social]),
    ("card-issuance", &[Line::Common]),
    ("notification", &[Line::Common]),
];

fn lines_of(service: &str) -> &'static [Line] {
    SERVICE_LINES
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("service '{service}' has schemas but no entry in asyncapi::SERVICE_LINES"))
}

/// What a schema file describes, read off its name (see `schema::all`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Command {
        service: String,
        name: String,
    },
    Result {
        service: String,
        name: String,
    },
    Event {
        service: String,
        name: String,
        version: u32,
    },
    Other,
}

fn kind_of(stem: &str) -> Kind {
    if stem.starts_with("control.") || stem == "reply" {
        return Kind::Other;
    }
    let Some((rest, last)) = stem.rsplit_once('.') else {
        return Kind::Other;
    };
    let Some((service, name)) = rest.split_once('.') else {
        return Kind::Other;
    };
    let (service, name) = (service.to_owned(), name.to_owned());
    match last {
        "command" => Kind::Command { service, name },
        "result" => Kind::Result { service, name },
        v if v.starts_with('v') && v[1..].parse::<u32>().is_ok() => Kind::Event {
            service,
            name,
            version: v[1..].parse().expect("checked"),
        },
        _ => Kind::Other,
    }
}

/// Moves every file's `$defs` into one map and rewrites the `$ref`s; returns the top-level
/// schemas by file stem and the hoisted definitions by their final name.
fn hoist(files: &BTreeMap<String, Value>) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    // A definition name is shared when every file that defines it defines the same schema.
    let mut seen: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for schema in files.values() {
        if let Some(Value::Object(defs)) = schema.get("$defs") {
            for (name, def) in defs {
                let v = seen.entry(name.clone()).or_default();
                if !v.contains(def) {
                    v.push(def.clone());
                }
            }
        }
    }
    let shared = |name: &str| seen.get(name).is_some_and(|v| v.len() == 1);
    let mut tops = BTreeMap::new();
    let mut defs_out = BTreeMap::new();
    for (file, schema) in files {
        let stem = file.trim_end_matches(".json").to_owned();
        let rename = |name: &str| {
            if shared(name) {
                name.to_owned()
            } else {
                format!("{stem}.{name}")
            }
        };
        let mut schema = schema.clone();
        let obj = schema.as_object_mut().expect("a schema is an object");
        obj.remove("$schema");
        if let Some(Value::Object(defs)) = obj.remove("$defs") {
            for (name, mut def) in defs {
                rewrite_refs(&mut def, &rename);
                defs_out.insert(rename(&name), def);
            }
        }
        rewrite_refs(&mut schema, &rename);
        tops.insert(stem, schema);
    }
    (tops, defs_out)
}

fn rewrite_refs(v: &mut Value, rename: &dyn Fn(&str) -> String) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/components/schemas/{}", rename(name));
            }
            m.values_mut().for_each(|x| rewrite_refs(x, rename));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, rename)),
        _ => {}
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn exchange_binding(exchange: &str) -> Value {
    json!({ "amqp": {
        "is": "routingKey",
        "exchange": { "name": exchange, "type": "topic", "durable": true, "autoDelete": false, "vhost": "/" },
        "bindingVersion": AMQP_BINDING,
    }})
}

fn line_parameter(lines: &[Line]) -> Value {
    let names: Vec<&str> = lines.iter().map(|l| l.as_str()).collect();
    json!({
        "enum": names,
        "description": "The administrative line (medical: 医保, social: 社保, common: both). Each line's queues are frozen, drained and resumed on their own.",
    })
}

/// The AMQP properties a message carries (DESIGN.md §3); `reply_to` only on commands.
fn amqp_properties(message_type: &str, command: bool) -> Value {
    let mut p = json!({
        "message_id": "UUID v7, the idempotency key: the same id again gets the stored reply and changes nothing",
        "content_type": "application/json",
        "type": message_type,
        "timestamp": "seconds since the epoch",
        "app_id": "the sender",
        "delivery_mode": 2,
    });
    if command {
        p["reply_to"] = json!("the sender's reply queue");
        p["correlation_id"] =
            json!("optional; the reply carries it, or the command's message_id when absent");
    } else {
        p["correlation_id"] =
            json!("the message_id of the command that caused the event, where there was one");
    }
    p
}

fn message(
    name: &str,
    title: String,
    summary: Option<&str>,
    payload: Value,
    message_type: &str,
    command: bool,
) -> Value {
    let mut m = json!({
        "name": name,
        "title": title,
        "contentType": "application/json",
        "headers": { "$ref": "#/components/schemas/amqp-headers" },
        "payload": payload,
        "correlationId": { "$ref": "#/components/correlationIds/correlation-id" },
        "bindings": { "amqp": { "messageType": message_type, "bindingVersion": AMQP_BINDING } },
        "x-amqp-properties": amqp_properties(message_type, command),
    });
    if let Some(s) = summary {
        m["summary"] = json!(s);
    }
    m
}

fn headers_schema() -> Value {
    let channels: Vec<&str> = [
        Channel::Online,
        Channel::Mobile,
        Channel::Kiosk,
        Channel::Counter,
        Channel::Bank,
        Channel::Tax,
        Channel::Institution,
        Channel::DataSharing,
    ]
    .iter()
    .map(|c| c.as_str())
    .collect();
    json!({
        "type": "object",
        "description": "AMQP application headers: CloudEvents binary content mode, W3C trace context, the channel a request came through and the operator who acted.",
        "properties": {
            "ce-specversion": { "type": "string", "const": "1.0" },
            "ce-id": { "type": "string", "description": "equal to the AMQP message_id" },
            "ce-source": { "type": "string", "description": "the sending service or system" },
            "ce-type": { "type": "string", "description": "equal to the AMQP type property, <service>.<name>.v<N>" },
            "ce-time": { "type": "string", "format": "date-time" },
            "traceparent": { "type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$" },
            "tracestate": { "type": "string" },
            "x-channel": { "type": "string", "enum": channels, "description": "how the request arrived; each channel is frozen on its own (counter when absent)" },
            "x-operator": { "type": "string", "description": "the person who acted, where one did" },
        },
    })
}

/// The whole document, as a JSON value (its key order is stable: `serde_json` sorts maps).
pub fn document() -> Value {
    let files = crate::schema::all();
    let (tops, defs) = hoist(&files);
    let mut schemas: Map<String, Value> = defs.into_iter().collect();
    for (stem, s) in &tops {
        schemas.insert(stem.clone(), s.clone());
    }
    schemas.insert("amqp-headers".into(), headers_schema());

    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut reply_messages = Map::new();

    let summary_of = |stem: &str| {
        tops.get(stem)
            .and_then(|s| s.get("description"))
            .and_then(Value::as_str)
    };

    for stem in tops.keys() {
        match kind_of(stem) {
            Kind::Command { service, name } => {
                let lines = lines_of(&service);
                let id = format!("{service}.{name}");
                let message_type = format!("{service}.{name}.v1");
                let cmd_msg = format!("{id}.command");
                messages.insert(
                    cmd_msg.clone(),
                    message(
                        &cmd_msg,
                        format!("{service}: {name}"),
                        summary_of(stem),
                        schema_ref(stem),
                        &message_type,
                        true,
                    ),
                );
                let reply_msg = format!("{id}.reply");
                let result = format!("{id}.result");
                let reply_payload = if tops.contains_key(&result) {
                    json!({ "allOf": [ schema_ref("reply"), {
                        "type": "object",
                        "properties": { "result": { "anyOf": [ schema_ref(&result), { "type": "null" } ] } },
                    } ] })
                } else {
                    schema_ref("reply")
                };
                messages.insert(
                    reply_msg.clone(),
                    message(
                        &reply_msg,
                        format!("{service}: reply to {name}"),
                        None,
                        reply_payload,
                        &format!("{service}.reply.v1"),
                        false,
                    ),
                );
                reply_messages.insert(
                    reply_msg.clone(),
                    json!({ "$ref": format!("#/components/messages/{reply_msg}") }),
                );
                channels.insert(id.clone(), json!({
                    "address": format!("{{line}}.{service}.{name}"),
                    "title": format!("{service} command {name}"),
                    "parameters": { "line": line_parameter(lines) },
                    "messages": { cmd_msg.clone(): { "$ref": format!("#/components/messages/{cmd_msg}") } },
                    "bindings": exchange_binding("insurance.commands"),
                }));
                operations.insert(format!("send.{id}"), json!({
                    "action": "send",
                    "title": format!("Send {name} to {service}"),
                    "channel": { "$ref": format!("#/channels/{id}") },
                    "messages": [ { "$ref": format!("#/channels/{id}/messages/{cmd_msg}") } ],
                    "bindings": { "amqp": { "deliveryMode": 2, "mandatory": true, "bindingVersion": AMQP_BINDING } },
                    "reply": {
                        "address": { "location": "$message.header#/reply_to", "description": "the sender's own (exclusive) queue" },
                        "channel": { "$ref": "#/channels/reply" },
                        "messages": [ { "$ref": format!("#/channels/reply/messages/{reply_msg}") } ],
                    },
                }));
            }
            Kind::Event {
                service,
                name,
                version,
            } => {
                let id = format!("{service}.{name}.v{version}");
                let (address, parameters) = if service == "freeze" {
                    // Every service publishes the freeze events of its own lines.
                    let services: Vec<&str> = SERVICE_LINES.iter().map(|(s, _)| *s).collect();
                    (
                        format!("{{line}}.{{service}}.{name}"),
                        json!({
                            "line": line_parameter(&Line::ALL),
                            "service": { "enum": services, "description": "the service whose line froze or thawed" },
                        }),
                    )
                } else {
                    (
                        format!("{{line}}.{service}.{name}"),
                        json!({ "line": line_parameter(lines_of(&service)) }),
                    )
                };
                messages.insert(
                    id.clone(),
                    message(
                        &id,
                        format!("{service}: {name} (v{version})"),
                        summary_of(stem),
                        schema_ref(stem),
                        &id,
                        false,
                    ),
                );
                channels.insert(
                    id.clone(),
                    json!({
                        "address": address,
                        "title": format!("{service} event {name}, version {version}"),
                        "parameters": parameters,
                        "messages": { id.clone(): { "$ref": format!("#/components/messages/{id}") } },
                        "bindings": exchange_binding("insurance.events"),
                    }),
                );
                operations.insert(
                    format!("receive.{id}"),
                    json!({
                        "action": "receive",
                        "title": format!("Learn of {name} from {service}"),
                        "channel": { "$ref": format!("#/channels/{id}") },
                        "messages": [ { "$ref": format!("#/channels/{id}/messages/{id}") } ],
                    }),
                );
            }
            Kind::Result { .. } | Kind::Other => {}
        }
    }

    // Operators' orders (insurancectl freeze): `<target>.freeze.<action>`, target `all` or a service.
    let control_msg = "control.freeze.command";
    messages.insert(
        control_msg.into(),
        message(
            control_msg,
            "Freeze order".into(),
            summary_of(control_msg),
            schema_ref(control_msg),
            "control.freeze.v1",
            true,
        ),
    );
    messages.insert(
        "control.freeze.reply".into(),
        message(
            "control.freeze.reply",
            "Reply to a freeze order".into(),
            Some("one per running service, typed <service>.reply.v1"),
            schema_ref("reply"),
            "<service>.reply.v1",
            false,
        ),
    );
    reply_messages.insert(
        "control.freeze.reply".into(),
        json!({ "$ref": "#/components/messages/control.freeze.reply" }),
    );
    let mut targets: Vec<&str> = vec!["all"];
    targets.extend(SERVICE_LINES.iter().map(|(s, _)| *s));
    channels.insert("control.freeze".into(), json!({
        "address": "{target}.freeze.{action}",
        "title": "Freeze orders (operators only)",
        "description": "Booked, changed, lifted and queried by `insurancectl freeze`; each running service replies once. Only operator users may publish here.",
        "parameters": {
            "target": { "enum": targets, "description": "every service, or one" },
            "action": { "description": "the order's action, as in the payload's `action`" },
        },
        "messages": { control_msg: { "$ref": format!("#/components/messages/{control_msg}") } },
        "bindings": exchange_binding("insurance.control"),
    }));
    operations.insert(
        "send.control.freeze".into(),
        json!({
            "action": "send",
            "title": "Book or query a freeze order",
            "channel": { "$ref": "#/channels/control.freeze" },
            "messages": [ { "$ref": format!("#/channels/control.freeze/messages/{control_msg}") } ],
            "reply": {
                "address": { "location": "$message.header#/reply_to" },
                "channel": { "$ref": "#/channels/reply" },
                "messages": [ { "$ref": "#/channels/reply/messages/control.freeze.reply" } ],
            },
        }),
    );
    let reply_refs: Map<String, Value> = reply_messages.into_iter().collect();
    channels.insert("reply".into(), json!({
        "address": null,
        "title": "Replies",
        "description": "Every command gets exactly one final reply, sent through the default exchange to the queue named in its reply_to, with the command's correlation_id (its message_id when it had none). `status` is ok, rejected (with a stable error code and field), deferred (accepted into a frozen line's backlog, with a receipt) or suspended (refused while frozen, with when it resumes).",
        "messages": reply_refs,
    }));

    json!({
        "asyncapi": "3.0.0",
        "id": "urn:city-insurance:back-office",
        "info": {
            "title": "City medical and social insurance back office",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Commands, replies and domain events of the enrollment, collection, benefits and card-issuance services, over RabbitMQ (AMQP 0-9-1). Generated from the contracts crate; see DESIGN.md §2–§4. Money is a decimal string (yuan, two places), dates ISO 8601, times with offset. Events are only ever extended with optional fields; a breaking change is a new version published beside the old one.",
            "license": { "name": "MIT" },
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "the broker of `make run`; each organisation gets its own user (`insurancectl subscriber provision`)",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "correlationIds": {
                "correlation-id": { "location": "$message.header#/correlation_id", "description": "AMQP correlation_id: on a reply, the command's correlation_id, or its message_id when it had none" },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn asyncapi_does_not_drift() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("asyncapi.json");
        let text = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "asyncapi.json drifted from the contract types; regenerate with \
             UPDATE_SCHEMAS=1 cargo test -p contracts asyncapi_does_not_drift"
        );
    }

    #[test]
    fn every_command_and_event_has_its_channel_and_operation() {
        let doc = document();
        let files = crate::schema::all();
        for file in files.keys() {
            let stem = file.trim_end_matches(".json");
            match kind_of(stem) {
                Kind::Command { service, name } => {
                    let id = format!("{service}.{name}");
                    assert!(doc["channels"][&id]["address"].is_string(), "{id}");
                    assert_eq!(doc["operations"][format!("send.{id}")]["action"], "send");
                    let reply = &doc["channels"]["reply"]["messages"][format!("{id}.reply")];
                    assert!(reply.is_object(), "{id} reply");
                }
                Kind::Event {
                    service,
                    name,
                    version,
                } => {
                    let id = format!("{service}.{name}.v{version}");
                    assert_eq!(doc["operations"][format!("receive.{id}")]["action"], "receive");
                    assert_eq!(
                        doc["channels"][&id]["bindings"]["amqp"]["exchange"]["name"],
                        "insurance.events"
                    );
                }
                _ => {}
            }
        }
        assert_eq!(
            doc["channels"]["enrollment.enroll-person"]["address"],
            "{line}.enrollment.enroll-person"
        );
        assert_eq!(
            doc["channels"]["enrollment.enroll-person"]["parameters"]["line"]["enum"],
            json!(["medical", "social"])
        );
        assert_eq!(
            doc["channels"]["card-issuance.apply-card"]["parameters"]["line"]["enum"],
            json!(["common"])
        );
    }

    #[test]
    fn every_reference_resolves_and_no_defs_remain() {
        let doc = document();
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("#/$defs/"), "a $defs reference was not rewritten");
        fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let ptr = r.trim_start_matches('#');
                        if doc.pointer(ptr).is_none() {
                            bad.push(r.clone());
                        }
                    }
                    m.values().for_each(|x| walk(x, doc, bad));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
                _ => {}
            }
        }
        let mut bad = Vec::new();
        walk(&doc, &doc, &mut bad);
        assert!(bad.is_empty(), "unresolved references: {bad:?}");
    }

    #[test]
    fn file_names_are_read_as_the_wire_names_them() {
        assert_eq!(
            kind_of("enrollment.enroll-person.command"),
            Kind::Command {
                service: "enrollment".into(),
                name: "enroll-person".into()
            }
        );
        assert_eq!(
            kind_of("collection.contribution-assessed.v1"),
            Kind::Event {
                service: "collection".into(),
                name: "contribution-assessed".into(),
                version: 1
            }
        );
        assert_eq!(kind_of("control.freeze.command"), Kind::Other);
        assert_eq!(kind_of("reply"), Kind::Other);
    }
}
