"""Proves the grants of k8s/base/topology.yaml (exported from the services' Rust code by
`insurancectl topology export`, as deploy/compose/rabbitmq/definitions.json is) on a real
broker: each service user can do what its service does at start-up and in operation, and is
refused outside it (another service's queues, routing keys it does not own, freeze orders).
Needs pika and PyYAML (PyPI) and a broker prepared by `insurancectl accounts apply --broker
--simulators` and `insurancectl topology apply` (docker-compose's broker-accounts and
broker-init) with the passwords in the same variables; the freeze-operator user (k8s only) is created here through
the management API as the admin, with the grants topology.yaml gives it.

    AMQP_HOST=127.0.0.1 AMQP_PORT=5672 RABBITMQ_API_URL=http://127.0.0.1:15672 \
    RABBITMQ_ADMIN_USER=... RABBITMQ_ADMIN_PASSWORD=... ENROLLMENT_MQ_PASSWORD=... \
        python deploy/tools/grants_test.py
"""

import base64
import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pika
import yaml


class Topology:
    """What k8s/base/topology.yaml declares and grants, read back from its resources."""

    def __init__(self, path):
        self.docs = docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        self.EXCHANGES = [s["name"] for s in self.specs("Exchange")]
        self.COMMANDS, self.EVENTS, self.CONTROL = (
            "insurance.commands", "insurance.events", "insurance.control")
        assert {self.COMMANDS, self.EVENTS, self.CONTROL} <= set(self.EXCHANGES), self.EXCHANGES
        self.queues = {s["name"]: s for s in self.specs("Queue")}
        archive = next(s for s in self.queues.values() if s["type"] == "stream")
        self.ARCHIVE, self.ARCHIVE_MAX_AGE = archive["name"], archive["arguments"]["x-max-age"]
        users = [d["metadata"]["name"] for d in docs if d["kind"] == "User"]
        self.OPERATORS = {u: self.grants(u) for u in users if u == "freeze-operator"}
        # service -> the lines of its command queues (its work queues are bound as it binds them)
        self.SERVICES = {
            u: {"commands": [q.split(".")[1] for q, _, _ in self.work_queues(u) if q.endswith(".commands")]}
            # data-sharing is the services' management-API user (the shovels), proved by
            # cli/tests/accounts.rs and cli/tests/data_sharing.rs, not a service.
            for u in users if u not in self.OPERATORS and u != "data-sharing"
        }

    def specs(self, kind):
        return [d["spec"] for d in self.docs if d["kind"] == kind]

    def grants(self, user):
        perms = next(s["permissions"] for s in self.specs("Permission") if s["userReference"]["name"] == user)
        topics = {s["permissions"]["exchange"]: (s["permissions"]["write"], s["permissions"]["read"])
                  for s in self.specs("TopicPermission") if s["userReference"]["name"] == user}
        return {**perms, "topics": topics}

    def work_queues(self, service):
        """(queue, exchange, binding keys) of every queue the service binds, in order."""
        out = {}
        for b in self.specs("Binding"):
            if b["destination"].startswith(f"{service}."):
                out.setdefault(b["destination"], (b["source"], []))[1].append(b["routingKey"])
        return [(q, ex, keys) for q, (ex, keys) in out.items()]

    def queue_declarations(self, queue):
        """The queue, its parking lot and retry tiers: (name, type, arguments)."""
        return [(name, s["type"], s.get("arguments", {})) for name, s in self.queues.items()
                if name == queue or name.startswith(f"{queue}.")]


t = Topology(Path(__file__).resolve().parents[2] / "k8s/base/topology.yaml")

VARS = {"enrollment": "ENROLLMENT", "collection": "COLLECTION", "benefits": "BENEFITS",
        "card-issuance": "CARD_ISSUANCE", "notification": "NOTIFICATION", "bank-sim": "BANK_SIM",
        "institution-sim": "INSTITUTION_SIM", "freeze-operator": "FREEZE_OPERATOR"}
PW = {user: os.environ.get(f"{var}_MQ_PASSWORD", f"test-{user}") for user, var in VARS.items()}
HOST, PORT = os.environ.get("AMQP_HOST", "127.0.0.1"), int(os.environ.get("AMQP_PORT", "5672"))
results = []


def api(method, path, body):
    url = os.environ.get("RABBITMQ_API_URL", "http://127.0.0.1:15672") + "/api/" + path
    auth = base64.b64encode(f"{os.environ['RABBITMQ_ADMIN_USER']}:{os.environ['RABBITMQ_ADMIN_PASSWORD']}".encode()).decode()
    req = urllib.request.Request(url, json.dumps(body).encode(), method=method,
                                 headers={"content-type": "application/json", "authorization": f"Basic {auth}"})
    urllib.request.urlopen(req).read()


def freeze_operator():
    op = t.OPERATORS["freeze-operator"]
    api("PUT", "users/freeze-operator", {"password": PW["freeze-operator"], "tags": ""})
    api("PUT", "permissions/%2F/freeze-operator", {k: op[k] for k in ("configure", "write", "read")})
    for exchange, (write, read) in op["topics"].items():
        api("PUT", "topic-permissions/%2F/freeze-operator", {"exchange": exchange, "write": write, "read": read})


def conn(user):
    return pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT, "/", pika.PlainCredentials(user, PW[user])))



def attempt(user, what, fn, expect_ok):
    c = conn(user)
    ch = c.channel()
    ch.confirm_delivery()
    try:
        fn(ch)
        ok, why = True, ""
    except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
        ok, why = False, str(e)[:120]
    finally:
        try: c.close()
        except Exception: pass
    good = ok == expect_ok
    results.append(good)
    print(("PASS" if good else "WRONG"), user, what, "allowed" if ok else f"refused ({why})")



def startup(service):
    def fn(ch):
        for ex in t.EXCHANGES:
            ch.exchange_declare(ex, "topic", durable=True)
        ch.queue_declare(t.ARCHIVE, durable=True, arguments={"x-queue-type": "stream", "x-max-age": t.ARCHIVE_MAX_AGE})
        ch.queue_bind(t.ARCHIVE, t.EVENTS, "#")
        for queue, exchange, keys in t.work_queues(service):
            for name, qtype, args in t.queue_declarations(queue):
                ch.queue_declare(name, durable=True, arguments={"x-queue-type": qtype, **args})
            for key in keys:
                ch.queue_bind(queue, exchange, key)
        ch.queue_declare("", exclusive=True, auto_delete=True)
        ch.basic_consume(f"{service}.control", lambda *a: None)
    return fn

def publish(exchange, key):
    return lambda ch: ch.basic_publish(exchange, key, b"{}", mandatory=False)

for s in t.SERVICES:
    attempt(s, "start-up: declares and binds its topology, consumes its control queue", startup(s), True)
    line = t.SERVICES[s]["commands"][0]
    attempt(s, f"publishes {line}.{s}.something-happened", publish(t.EVENTS, f"{line}.{s}.something-happened"), True)
    attempt(s, "publishes another service's event", publish(t.EVENTS, "medical.benefits.settlement-completed" if s != "benefits" else "medical.enrollment.person-enrolled"), False)
    attempt(s, "parks through the default exchange", publish("", f"{s}.control.parking"), True)
    attempt(s, "publishes a freeze order", publish(t.CONTROL, "all.freeze.order"), False)
    other = "collection" if s != "collection" else "enrollment"
    attempt(s, f"declares {other}'s queue", lambda ch: ch.queue_declare(f"{other}.medical.commands", durable=True, arguments={"x-queue-type": "quorum"}), False)
    attempt(s, f"consumes {other}'s control queue", lambda ch: ch.basic_consume(f"{other}.control", lambda *a: None), False)
    attempt(s, f"binds its queue to {other}'s commands", lambda ch: ch.queue_bind(f"{s}.control", t.COMMANDS, f"medical.{other}.*"), False)

attempt("collection", "sends itself assess-month", publish(t.COMMANDS, "medical.collection.assess-month"), True)
attempt("collection", "sends enroll-person", publish(t.COMMANDS, "medical.enrollment.enroll-person"), False)
attempt("enrollment", "sends a command", publish(t.COMMANDS, "medical.collection.assess-month"), False)

def bank(ch):
    ch.queue_declare("subscriber.bank", durable=True)
    for ev in ("bank-account-requested", "card-production-requested"):
        ch.queue_bind("subscriber.bank", t.EVENTS, f"common.card-issuance.{ev}")
    ch.queue_declare("", exclusive=True, auto_delete=True)
    ch.basic_consume("subscriber.bank", lambda *a: None)
attempt("bank-sim", "declares, binds and consumes subscriber.bank", bank, True)
attempt("bank-sim", "answers card issuance", publish(t.COMMANDS, "common.card-issuance.record-bank-account"), True)
attempt("bank-sim", "binds to enrollment events", lambda ch: ch.queue_bind("subscriber.bank", t.EVENTS, "medical.enrollment.person-enrolled"), False)
attempt("bank-sim", "sends a benefits command", publish(t.COMMANDS, "medical.benefits.settle"), False)
attempt("institution-sim", "asks benefits with a reply queue", lambda ch: (ch.queue_declare("", exclusive=True), ch.basic_publish(t.COMMANDS, "medical.benefits.person-info", b"{}")), True)
attempt("institution-sim", "sends a collection command", publish(t.COMMANDS, "medical.collection.record-payment"), False)
attempt("institution-sim", "consumes a service queue", lambda ch: ch.basic_consume("benefits.medical.commands", lambda *a: None), False)
freeze_operator()
attempt("freeze-operator", "sends a freeze order to all and asks one service", lambda ch: (ch.queue_declare("", exclusive=True), ch.basic_publish(t.CONTROL, "all.freeze.order", b"{}"), ch.basic_publish(t.CONTROL, "enrollment.freeze.status", b"{}")), True)
attempt("freeze-operator", "finds a control queue (passive declare)", lambda ch: ch.queue_declare("enrollment.control", passive=True), True)
attempt("freeze-operator", "sends a business command", publish(t.COMMANDS, "medical.enrollment.enroll-person"), False)
attempt("freeze-operator", "publishes an event", publish(t.EVENTS, "medical.enrollment.person-enrolled"), False)
attempt("freeze-operator", "reads a service queue", lambda ch: ch.basic_consume("enrollment.control", lambda *a: None), False)
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
