"""The broker topology and the least-privilege grants of every service, written once for the
deployment files until `insurancectl topology export` generates them from Rust (issue 13 §2):

    python deploy/tools/topology.py k8s     > k8s/base/topology.yaml
    python deploy/tools/topology.py compose > deploy/compose/rabbitmq/definitions.json
    python deploy/tools/topology.py check     (exit 1 when either committed file differs)

What is here is read from the Rust code: names from shared/messaging/src/names.rs, queue
arguments from shared/messaging/src/topology.rs (declare_work_queue, declare_shared), the
retry tiers and delivery limit from each service's configuration/base.yaml, what each service
consumes from its ServiceSpec (lib.rs) and projection::bindings. The services still declare
their own queues at start-up (with the same arguments), so these resources and grants must
match what they declare; a queue missing here is declared by the service itself.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "insurance-broker"
VHOST = "/"
LINES = ("medical", "social", "common")
DELIVERY_LIMIT = 20
RETRY_TIERS_MS = (1_000, 10_000, 60_000, 600_000)
ARCHIVE_MAX_AGE = "7D"

COMMANDS = "insurance.commands"
EVENTS = "insurance.events"
CONTROL = "insurance.control"
SUBSCRIBERS = "insurance.subscribers"
ARCHIVE = "insurance.events.archive"
EXCHANGES = (COMMANDS, EVENTS, CONTROL, SUBSCRIBERS)

ENROLLMENT_FACTS = (
    "person-enrolled",
    "staff-added",
    "staff-removed",
    "enrollment-suspended",
    "enrollment-terminated",
    "transferred-out",
    "transferred-in",
)


def enrollment_events(line, names):
    return [f"{line}.enrollment.{n}" for n in names]


# service -> the lines of its command queues, the event bindings per line, and the commands it
# sends itself (topic-permission regex on insurance.commands; None: it sends none).
SERVICES = {
    "enrollment": {
        "commands": ["medical", "social"],
        "events": {},
        "sends": None,
    },
    "collection": {
        "commands": ["medical", "social"],
        "events": {line: enrollment_events(line, ENROLLMENT_FACTS) for line in ("medical", "social")},
        # schedule.rs: the monthly assessment and the daily arrears check, to itself.
        "sends": r"^(medical|social)\.collection\.(assess-month|detect-arrears)$",
    },
    "benefits": {
        "commands": ["medical"],
        "events": {
            "medical": enrollment_events("medical", ENROLLMENT_FACTS + ("contact-changed",))
            + [f"medical.collection.{n}" for n in ("contribution-settled", "arrears-detected", "arrears-cleared")],
            "common": ["common.card-issuance.*"],
        },
        "sends": None,
    },
    "card-issuance": {
        "commands": ["common"],
        "events": {
            line: enrollment_events(line, ENROLLMENT_FACTS + ("contact-changed",)) for line in ("medical", "social")
        },
        "sends": None,
    },
    # services/notification (handlers::bindings): what becomes an SMS, on every line.
    "notification": {
        "commands": ["common"],
        "events": {
            **{
                line: [
                    f"{line}.{k}"
                    for k in (
                        "enrollment.person-enrolled",
                        "enrollment.staff-added",
                        "enrollment.employer-registered",
                        "enrollment.contact-changed",
                        "enrollment.transferred-in",
                        "collection.contribution-assessed",
                        "collection.payment-recorded",
                        "collection.arrears-detected",
                        "benefits.settlement-completed",
                        "*.deferred-request-processed",
                    )
                ]
                for line in ("medical", "social")
            },
            "common": [
                f"common.{k}"
                for k in (
                    "card-issuance.card-arrived",
                    "card-issuance.photo-rejected",
                    "card-issuance.bank-account-failed",
                    "card-issuance.card-production-failed",
                    "card-issuance.card-activated",
                    "*.deferred-request-processed",
                )
            ],
        },
        "sends": None,
    },
}

# Outside parties played by the simulators (docker-compose only; on a cluster the real ones
# are provisioned with `insurancectl subscriber provision`).
SIMULATORS = {
    # simulators/bank: declares and consumes subscriber.bank, answers card issuance.
    "bank": {
        "configure": r"^(subscriber\.bank|amq\.gen-.*)$",
        "write": r"^(subscriber\.bank|insurance\.commands|amq\.gen-.*)$",
        "read": r"^(subscriber\.bank|insurance\.events|amq\.gen-.*)$",
        "topics": {
            COMMANDS: (r"^common\.card-issuance\..+$", "^$"),
            EVENTS: ("^$", r"^common\.card-issuance\.(bank-account-requested|card-production-requested)$"),
            CONTROL: ("^$", "^$"),
        },
    },
    # simulators/institution: a hospital's day of settlement commands, replies only.
    "institution": {
        "configure": r"^amq\.gen-.*$",
        "write": r"^insurance\.commands$",
        "read": r"^amq\.gen-.*$",
        "topics": {
            COMMANDS: (r"^medical\.benefits\..+$", "^$"),
            EVENTS: ("^$", "^$"),
            CONTROL: ("^$", "^$"),
        },
    },
}


# Operators' users on the cluster. freeze-operator: the cutover Job (`insurancectl freeze plan`)
# publishes freeze orders to insurance.control (`<service|all>.freeze.<action>`), finds the
# running services with passive declares of their control queues (no permission needed) and
# reads the answers on a server-named reply queue.
OPERATORS = {
    "freeze-operator": {
        "configure": r"^amq\.gen-.*$",
        "write": r"^(insurance\.control|amq\.gen-.*)$",
        "read": r"^amq\.gen-.*$",
        "topics": {
            COMMANDS: ("^$", "^$"),
            EVENTS: ("^$", "^$"),
            CONTROL: (r"^(enrollment|collection|benefits|card-issuance|notification|all)\.freeze\.[a-z-]+$", "^$"),
        },
    },
}


def esc(name):
    return re.escape(name).replace("\\-", "-")


def tier_label(ms):
    if ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def work_queues(service):
    spec = SERVICES[service]
    out = [(f"{service}.{line}.commands", COMMANDS, [f"{line}.{service}.*"]) for line in spec["commands"]]
    out += [(f"{service}.{line}.events", EVENTS, keys) for line, keys in spec["events"].items()]
    out.append((f"{service}.control", CONTROL, [f"{service}.#", "all.#"]))
    return out


def queue_declarations(queue):
    """What declare_work_queue declares for `queue`: (name, type, arguments)."""
    parking = f"{queue}.parking"
    out = [(parking, "quorum", {})]
    for ms in RETRY_TIERS_MS:
        out.append(
            (
                f"{queue}.retry.{tier_label(ms)}",
                "quorum",
                {
                    "x-message-ttl": ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
        )
    out.append(
        (
            queue,
            "quorum",
            {
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": parking,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
    )
    return out


def grants(service):
    """Configure / write / read and topic permissions of a service's broker user."""
    own = f"{esc(service)}\\..*"
    shared = "|".join(esc(e) for e in EXCHANGES + (ARCHIVE,))
    spec = SERVICES[service]
    lines = "|".join(LINES)
    perms = {
        # Declares the shared exchanges and the archive (idempotent), its own queues, and
        # server-named reply queues (amq.gen-*) for the commands it sends.
        "configure": f"^({shared}|{own}|amq\\.gen-.*)$",
        # Publishes events and commands; binds its queues and the archive (queue.bind needs
        # write on the queue); replies, retries and parking go through the default exchange.
        "write": f"^({esc(COMMANDS)}|{esc(EVENTS)}|{esc(ARCHIVE)}|{own}|amq\\.default|amq\\.gen-.*)$",
        # Consumes its own queues; binding needs read on the source exchange.
        "read": f"^({esc(COMMANDS)}|{esc(EVENTS)}|{esc(CONTROL)}|{own}|amq\\.gen-.*)$",
    }
    topics = {
        # write: the routing keys it may publish; read: the binding keys it may use.
        COMMANDS: (spec["sends"] or "^$", f"^({lines})\\.{esc(service)}\\.\\*$"),
        EVENTS: (f"^({lines})\\.{esc(service)}\\..+$", ".*"),
        CONTROL: ("^$", f"^({esc(service)}|all)\\.#$"),
    }
    return perms, topics


def policy_pattern():
    """Every service's work queues (not their parking lots or retry tiers)."""
    services = "|".join(esc(s) for s in SERVICES)
    return f"^({services})\\.((medical|social|common)\\.(commands|events)|control)$"


def k8s_name(name):
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def ref():
    return {"name": CLUSTER}


def resource(kind, name, spec):
    return {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "insurance"}},
        "spec": {**spec, "rabbitmqClusterReference": ref()},
    }


def k8s_documents():
    docs = []
    for ex in EXCHANGES:
        docs.append(
            resource(
                "Exchange",
                k8s_name(ex),
                {"name": ex, "vhost": VHOST, "type": "topic", "durable": True, "autoDelete": False},
            )
        )
    docs.append(
        resource(
            "Queue",
            k8s_name(ARCHIVE),
            {
                "name": ARCHIVE,
                "vhost": VHOST,
                "type": "stream",
                "durable": True,
                "arguments": {"x-max-age": ARCHIVE_MAX_AGE},
                "deletionPolicy": "retain",
            },
        )
    )
    docs.append(
        resource(
            "Binding",
            k8s_name(f"{ARCHIVE}-from-events"),
            {"vhost": VHOST, "source": EVENTS, "destination": ARCHIVE, "destinationType": "queue", "routingKey": "#"},
        )
    )
    for service in SERVICES:
        for queue, exchange, keys in work_queues(service):
            for name, qtype, args in queue_declarations(queue):
                spec = {"name": name, "vhost": VHOST, "type": qtype, "durable": True, "deletionPolicy": "retain"}
                if args:
                    spec["arguments"] = args
                docs.append(resource("Queue", k8s_name(name), spec))
            for key in keys:
                docs.append(
                    resource(
                        "Binding",
                        k8s_name(f"{queue}-{key.replace('*', 'any').replace('#', 'all')}"),
                        {
                            "vhost": VHOST,
                            "source": exchange,
                            "destination": queue,
                            "destinationType": "queue",
                            "routingKey": key,
                        },
                    )
                )
    docs.append(
        resource(
            "Policy",
            "insurance-delivery-limit",
            {
                "name": "insurance-delivery-limit",
                "vhost": VHOST,
                # A guard: every work queue is declared with x-delivery-limit; for quorum
                # queues the lower of policy and argument applies, so this changes nothing
                # unless a queue was declared without it (RabbitMQ 3.10 has no default).
                "pattern": policy_pattern(),
                "applyTo": "queues",
                "priority": 0,
                "definition": {"delivery-limit": DELIVERY_LIMIT},
            },
        )
    )
    users = {s: grants(s) for s in SERVICES}
    for name, op in OPERATORS.items():
        users[name] = ({k: op[k] for k in ("configure", "write", "read")}, op["topics"])
    for service, (perms, topics) in users.items():
        docs.append(
            resource(
                "User",
                k8s_name(service),
                {"tags": [], "importCredentialsSecret": {"name": f"{k8s_name(service)}-broker"}},
            )
        )
        docs.append(
            resource(
                "Permission",
                k8s_name(service),
                {"vhost": VHOST, "userReference": {"name": k8s_name(service)}, "permissions": perms},
            )
        )
        for exchange, (write, read) in topics.items():
            docs.append(
                resource(
                    "TopicPermission",
                    k8s_name(f"{service}-{exchange}"),
                    {
                        "vhost": VHOST,
                        "userReference": {"name": k8s_name(service)},
                        "permissions": {"exchange": exchange, "write": write, "read": read},
                    },
                )
            )
    return docs


def compose_definitions():
    """A RabbitMQ definitions document for `POST /api/definitions` (deploy/compose/rabbitmq/
    init.sh creates the users with their passwords first). Queues are left to the services."""
    permissions, topic_permissions = [], []
    users = {s: grants(s) for s in SERVICES}
    for name, sim in SIMULATORS.items():
        users[f"{name}-sim"] = ({k: sim[k] for k in ("configure", "write", "read")}, sim["topics"])
    for user, (perms, topics) in users.items():
        permissions.append({"user": user, "vhost": VHOST, **perms})
        for exchange, (write, read) in topics.items():
            topic_permissions.append({"user": user, "vhost": VHOST, "exchange": exchange, "write": write, "read": read})
    return {
        "vhosts": [{"name": VHOST}],
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        "exchanges": [
            {
                "name": ex,
                "vhost": VHOST,
                "type": "topic",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for ex in EXCHANGES
        ],
        "policies": [
            {
                "name": "insurance-delivery-limit",
                "vhost": VHOST,
                "pattern": policy_pattern(),
                "apply-to": "queues",
                "priority": 0,
                "definition": {"delivery-limit": DELIVERY_LIMIT},
            }
        ],
    }


HEADER = """\
# GENERATED by deploy/tools/topology.py (python deploy/tools/topology.py k8s): do not edit by
# hand. Messaging Topology Operator resources for what the services declare and the broker user
# of each service with its least-privilege grants (issue 13 §1, §2). A later change generates
# this file from the Rust code (`insurancectl topology export --format k8s`).
"""


def render_k8s():
    import yaml

    return HEADER + yaml.safe_dump_all(k8s_documents(), sort_keys=False, explicit_start=True, width=200)


def render_compose():
    return json.dumps(compose_definitions(), indent=2) + "\n"


TARGETS = {
    "k8s": (render_k8s, ROOT / "k8s/base/topology.yaml"),
    "compose": (render_compose, ROOT / "deploy/compose/rabbitmq/definitions.json"),
}


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    if what in TARGETS:
        sys.stdout.write(TARGETS[what][0]())
        return 0
    if what == "write":
        for render, path in TARGETS.values():
            path.write_text(render())
        return 0
    if what == "check":
        stale = [str(path.relative_to(ROOT)) for render, path in TARGETS.values() if not path.exists() or path.read_text() != render()]
        if stale:
            print(f"out of date (run: python deploy/tools/topology.py write): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    print("usage: topology.py k8s | compose | write | check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
