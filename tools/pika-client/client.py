"""An organisation outside the back office, written in another language with nothing but the
published AsyncAPI document: it sends one command and reads the event it causes.

Everything about the wire comes from the document: the exchange and routing key of the
command's channel and of the event's channel, the AMQP properties and headers a message
carries, the payload schemas (the command is checked before it is sent, the reply and the
event when they arrive), and where the reply goes (the `reply_to` queue).

Usage: client.py --asyncapi FILE --url AMQP_URL [--prefix P] --line LINE
                 --send OPERATION --receive OPERATION --body JSON [--match FIELD]
Prints one JSON line: {"reply": ..., "event": ..., "checked": [...]}; exits 1 on any failure.
"""

import argparse
import json
import sys
import time
import uuid
from datetime import datetime, timezone

import jsonschema
import pika


def fail(msg):
    print(f"outside client: {msg}", file=sys.stderr)
    sys.exit(1)


def deref(doc, node):
    """Follows a local $ref ('#/a/b') once."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if not ref:
        return node
    out = doc
    for part in ref.lstrip("#/").split("/"):
        out = out[part]
    return out


def validator(doc, schema):
    """A draft-07 validator whose root holds the document's components, so refs resolve."""
    root = {"components": doc["components"], **schema}
    return jsonschema.Draft7Validator(root, format_checker=jsonschema.FormatChecker())


def check(doc, schema, value, what, checked):
    errors = sorted(validator(doc, schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        fail(f"{what} does not match the document's schema: " + "; ".join(e.message for e in errors[:5]))
    checked.append(what)


def address(channel, line):
    addr = channel["address"]
    params = channel.get("parameters", {})
    if "line" in params:
        allowed = params["line"].get("enum")
        if allowed and line not in allowed:
            fail(f"line {line} is not one of {allowed} for {addr}")
        addr = addr.replace("{line}", line)
    if "{" in addr:
        fail(f"unfilled parameter in {addr}")
    return addr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--asyncapi", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--line", required=True)
    ap.add_argument("--send", required=True, help="operation id, e.g. send.enrollment.enroll-person")
    ap.add_argument("--receive", required=True, help="operation id, e.g. receive.enrollment.person-enrolled.v1")
    ap.add_argument("--body", required=True)
    ap.add_argument("--match", help="a field the event shares with the command")
    ap.add_argument("--wait", type=float, default=20.0)
    a = ap.parse_args()

    with open(a.asyncapi, encoding="utf-8") as f:
        doc = json.load(f)
    if not doc.get("asyncapi", "").startswith("3."):
        fail("not an AsyncAPI 3 document")
    checked = []

    send_op = doc["operations"][a.send]
    if send_op["action"] != "send":
        fail(f"{a.send} is not a send operation")
    cmd_channel = deref(doc, send_op["channel"])
    cmd_message = deref(doc, deref(doc, send_op["messages"][0]))
    cmd_exchange = a.prefix + cmd_channel["bindings"]["amqp"]["exchange"]["name"]
    cmd_key = address(cmd_channel, a.line)
    reply_message = deref(doc, deref(doc, send_op["reply"]["messages"][0]))
    if send_op["reply"]["address"]["location"] != "$message.header#/reply_to":
        fail("the document does not say replies go to reply_to")

    recv_op = doc["operations"][a.receive]
    if recv_op["action"] != "receive":
        fail(f"{a.receive} is not a receive operation")
    ev_channel = deref(doc, recv_op["channel"])
    ev_message = deref(doc, deref(doc, recv_op["messages"][0]))
    ev_exchange = a.prefix + ev_channel["bindings"]["amqp"]["exchange"]["name"]
    ev_key = address(ev_channel, a.line)
    ev_type = ev_message["bindings"]["amqp"]["messageType"]

    body = json.loads(a.body)
    check(doc, cmd_message["payload"], body, "command payload", checked)

    conn = pika.BlockingConnection(pika.URLParameters(a.url))
    ch = conn.channel()
    # Our own queues, server-named and exclusive: one for the event, one for the reply.
    ev_q = ch.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
    ch.queue_bind(queue=ev_q, exchange=ev_exchange, routing_key=ev_key)
    reply_q = ch.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
    ch.confirm_delivery()

    message_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    props_doc = cmd_message["x-amqp-properties"]
    headers = {
        "ce-specversion": "1.0",
        "ce-id": message_id,
        "ce-source": "outside-client",
        "ce-type": props_doc["type"],
        "ce-time": now.isoformat(),
        "x-channel": "online",
    }
    check(doc, cmd_message["headers"], headers, "command headers", checked)
    props = pika.BasicProperties(
        message_id=message_id,
        correlation_id=message_id,
        reply_to=reply_q,
        content_type=props_doc["content_type"],
        type=props_doc["type"],
        timestamp=int(now.timestamp()),
        app_id="outside-client",
        delivery_mode=props_doc["delivery_mode"],
        headers=headers,
    )
    ch.basic_publish(cmd_exchange, cmd_key, json.dumps(body).encode(), props, mandatory=True)

    deadline = time.monotonic() + a.wait
    reply = None
    while reply is None and time.monotonic() < deadline:
        method, p, data = ch.basic_get(reply_q, auto_ack=True)
        if method is None:
            conn.sleep(0.05)
            continue
        if p.correlation_id == message_id:
            reply = json.loads(data)
    if reply is None:
        fail(f"no reply within {a.wait}s")
    check(doc, reply_message["payload"], reply, "reply payload", checked)
    if reply.get("status") != "ok":
        fail(f"the command was not accepted: {reply}")

    event = None
    while event is None and time.monotonic() < deadline:
        method, p, data = ch.basic_get(ev_q, auto_ack=True)
        if method is None:
            conn.sleep(0.05)
            continue
        candidate = json.loads(data)
        if p.type != ev_type:
            continue
        if a.match and candidate.get(a.match) != body.get(a.match):
            continue
        check(doc, ev_message["headers"], dict(p.headers or {}), "event headers", checked)
        if p.headers.get("ce-type") != ev_type:
            fail(f"event ce-type {p.headers.get('ce-type')} is not {ev_type}")
        event = {"type": p.type, "routing_key": method.routing_key, "body": candidate}
    if event is None:
        fail(f"no {ev_type} on {ev_key} within {a.wait}s")
    check(doc, ev_message["payload"], event["body"], "event payload", checked)
    conn.close()
    print(json.dumps({"reply": reply, "event": event, "checked": checked}, ensure_ascii=False))


if __name__ == "__main__":
    main()
