"""Mosquitto access control for Kota Cerdas, generated from the device registry.

Pure functions; ``kota broker`` (kota/broker_cli.py) prints their results and
deploy/mosquitto/make-secrets.sh writes them into the git-ignored secrets folder.

Who may do what (docs/broker.md, "Users and access control"):

- ``kota-ingest`` reads ``kota/#`` (plain and ``$share/<group>/...`` subscriptions), and so do
  ``kota-ingest-1`` ... ``kota-ingest-N``, the accounts of ``kota ingest --workers N``;
- ``kota-simulator`` writes ``kota/#`` (the demo's simulated city only);
- ``kota-healthcheck`` reads ``kota/healthcheck`` (docker-compose.yml's health check);
- every device account writes only the exact topics ``kota/<city>/<kind>/<device_id>`` of the
  registry entries it owns, and reads nothing.

A device account is named after the device id. Two cases own several registry entries:

- a Raspberry Pi agent with ``agent.id`` A publishes as ``A-<kind>`` (``A-air``, ``A-status``, ...)
  and logs in as A: pass ``agents=["A"]`` and A owns every registered ``A-<kind>`` whose kind
  matches its suffix;
- a device X whose heartbeat twin ``X-status`` (kind status) is registered owns that twin too
  (the convention of simulators/cities/jakarta/devices.yaml).

The broker binds each client id to its account (``use_username_as_clientid`` in
mosquitto.conf): whatever client id a device sends, its session is its user name, so no device can
take over ingest's session. That is why each ingest worker needs its own account: workers logging
in as one user would share one client id and disconnect each other (docs/broker.md).

Only exact topics are granted, never a prefix or a pattern: Mosquitto's ``pattern`` lines
apply to every user and ``%u`` stands for a whole topic level, so a pattern cannot express
"the ids A-air and A-status" without also granting them to other accounts.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from kota.registry import Registry

__all__ = [
    "DYNSEC_RESPONSE_TOPIC",
    "DYNSEC_TOPIC",
    "HEALTHCHECK_TOPIC",
    "HEALTHCHECK_USER",
    "INGEST_USER",
    "PROVISIONER_USER",
    "SERVICE_PREFIX",
    "SERVICE_USERS",
    "SIMULATOR_USER",
    "Account",
    "accounts",
    "acl_text",
    "agent_candidates",
    "device_role",
    "device_topics",
    "dynsec_config",
    "dynsec_create_commands",
    "dynsec_remove_commands",
    "ingest_users",
    "merge_passwords",
    "parse_passwords",
    "topic_of",
    "unmatched_agents",
]

INGEST_USER = "kota-ingest"
SIMULATOR_USER = "kota-simulator"
HEALTHCHECK_USER = "kota-healthcheck"
HEALTHCHECK_TOPIC = "kota/healthcheck"
SERVICE_USERS = (INGEST_USER, SIMULATOR_USER, HEALTHCHECK_USER)
# Device and agent ids may not start with this: it is kept for the service accounts, including
# the ingest workers' kota-ingest-<n>.
SERVICE_PREFIX = "kota-"

# (access, topic) per service account. "read" also allows subscribing; Mosquitto 2.0 checks a
# $share/<group>/<filter> subscription against <filter>, so kota/# covers ingest --workers.
_SERVICE_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    INGEST_USER: (("read", "kota/#"),),
    SIMULATOR_USER: (("write", "kota/#"),),
    HEALTHCHECK_USER: (("read", HEALTHCHECK_TOPIC),),
}


def ingest_users(workers: int = 0) -> list[str]:
    """``kota-ingest`` and the accounts of ``kota ingest --workers`` 1..``workers``
    (a worker logs in as its client id ``kota-ingest-<n>``)."""
    if workers < 0:
        raise ValueError(f"ingest workers must be 0 or more, not {workers}")
    return [INGEST_USER] + [f"{INGEST_USER}-{number}" for number in range(1, workers + 1)]


@dataclass(frozen=True)
class Account:
    """A broker user and the exact topics it may publish to."""

    username: str
    topics: tuple[str, ...]


def topic_of(city: str, kind: str, device_id: str) -> str:
    return f"kota/{city}/{kind}/{device_id}"


def _owner(device_id: str, kind: str, registered: set[str], agents: set[str]) -> str:
    for agent in agents:
        if device_id == f"{agent}-{kind}":
            return agent
    twin = device_id.removesuffix("-status")
    if kind == "status" and twin != device_id and twin in registered:
        return twin
    return device_id


def accounts(registry: Registry, agents: Iterable[str] = ()) -> list[Account]:
    """One account per owner (device id or agent id), sorted by name, topics sorted."""
    agent_ids = set(agents)
    clashes = sorted(name for name in {d.device_id for d in registry} | agent_ids
                     if name.startswith(SERVICE_PREFIX))
    if clashes:
        raise ValueError(f"device or agent id(s) {clashes} clash with a service account "
                         f"(ids starting with {SERVICE_PREFIX!r} are kept for the services)")
    registered = {d.device_id for d in registry}
    owned: dict[str, set[str]] = {}
    for device in registry:
        owner = _owner(device.device_id, device.kind, registered, agent_ids)
        owned.setdefault(owner, set()).add(topic_of(device.city, device.kind, device.device_id))
    return [Account(name, tuple(sorted(topics))) for name, topics in sorted(owned.items())]


def unmatched_agents(registry: Registry, agents: Iterable[str]) -> list[str]:
    """The agent ids that own no registered device (no ``<id>-<kind>`` of that kind)."""
    return [agent for agent in dict.fromkeys(agents)
            if not any(d.device_id == f"{agent}-{d.kind}" for d in registry)]


def agent_candidates(registry: Registry) -> list[str]:
    """Ids that ``--agent`` would match: every ``A`` of a registered ``A-<kind>`` of that kind,
    except a heartbeat twin ``X-status`` of a registered device X."""
    registered = {d.device_id for d in registry}
    found = set()
    for device in registry:
        prefix = device.device_id.removesuffix(f"-{device.kind}")
        if prefix != device.device_id and prefix and not (device.kind == "status"
                                                           and prefix in registered):
            found.add(prefix)
    return sorted(found)


def acl_text(registry: Registry, agents: Iterable[str] = (), *, source: str = "",
             ingest_workers: int = 0) -> str:
    """The content of Mosquitto's acl_file for the service accounts and ``registry``."""
    lines = [
        "# Mosquitto ACL for Kota Cerdas, generated by `kota broker acl`"
        + (f" from {source}" if source else "") + ".",
        "# Do not edit: change the registry (or --agent) and run deploy/mosquitto/make-secrets.sh.",
        "# Anything not granted here is denied. Devices write only their own topics.",
        "",
    ]
    rules_of = dict(_SERVICE_RULES)
    for worker in ingest_users(ingest_workers)[1:]:
        rules_of[worker] = _SERVICE_RULES[INGEST_USER]
    for user, rules in rules_of.items():
        lines.append(f"user {user}")
        lines += [f"topic {access} {topic}" for access, topic in rules]
        lines.append("")
    for account in accounts(registry, agents):
        lines.append(f"user {account.username}")
        lines += [f"topic write {topic}" for topic in account.topics]
        lines.append("")
    return "\n".join(lines)


def parse_passwords(text: str) -> dict[str, str]:
    """``username:password`` lines (mosquitto_passwd -U input); blank lines and # skipped."""
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, separator, password = line.partition(":")
        if not separator or not user or not password:
            raise ValueError(f"line {number}: not username:password")
        result[user] = password
    return result


def merge_passwords(existing: Mapping[str, str], usernames: Iterable[str], *,
                    rotate: Iterable[str] = (),
                    new_password: Callable[[], str] = lambda: secrets.token_urlsafe(24),
                    ) -> dict[str, str]:
    """Passwords for exactly ``usernames``: kept from ``existing`` unless rotated, else new.

    Accounts no longer in ``usernames`` (devices removed from the registry) are dropped.
    """
    names = list(usernames)
    unknown = sorted(set(rotate) - set(names))
    if unknown:
        raise ValueError(f"cannot rotate unknown account(s) {unknown}")
    renew = set(rotate)
    return {name: existing[name] if name in existing and name not in renew else new_password()
            for name in sorted(names)}


# -- dynamic security (devices provisioned without a restart; docs/security.md) ----------------
# The account `kota devices` and the API use to send dynamic-security commands; it may do
# nothing else (no topic of kota/ is granted to it).
PROVISIONER_USER = "kota-provisioner"
DYNSEC_TOPIC = "$CONTROL/dynamic-security/v1"
DYNSEC_RESPONSE_TOPIC = f"{DYNSEC_TOPIC}/response"
# PBKDF2-SHA512 rounds for the provisioner's password in the seed file (mosquitto_ctrl's own
# default in 2.0 is 101; this one is a human-chosen password, checked once per provisioning).
SEED_ITERATIONS = 100_000


def device_topics(device_id: str, city: str, kind: str) -> tuple[str, ...]:
    """What a provisioned device may publish: its own topic and, unless it is a status device,
    the heartbeat and Last Will topic of a kota-agent with ``agent.id`` = the device id."""
    topics = [topic_of(city, kind, device_id)]
    if kind != "status":
        topics.append(topic_of(city, "status", f"{device_id}-status"))
    return tuple(topics)


def device_role(device_id: str) -> str:
    return f"device-{device_id}"


def dynsec_create_commands(device_id: str, password: str, topics: Iterable[str],
                           textname: str = "") -> list[dict[str, object]]:
    """Dynamic-security commands that make a device's client (user name and client id = device
    id) and a role allowing publish on ``topics`` only."""
    role = device_role(device_id)
    commands: list[dict[str, object]] = [
        {"command": "createRole", "rolename": role},
        *({"command": "addRoleACL", "rolename": role, "acltype": "publishClientSend",
           "topic": topic, "priority": 0, "allow": True} for topic in topics),
        {"command": "createClient", "username": device_id, "password": password,
         "clientid": device_id, "textname": textname[:100],
         "roles": [{"rolename": role, "priority": 0}]},
    ]
    return commands


def dynsec_remove_commands(device_id: str) -> list[dict[str, object]]:
    """Disable (which disconnects it now), then delete the client and its role."""
    return [{"command": "disableClient", "username": device_id},
            {"command": "deleteClient", "username": device_id},
            {"command": "deleteRole", "rolename": device_role(device_id)}]


def dynsec_config(admin: str, password: str, *, salt: bytes | None = None,
                  iterations: int = SEED_ITERATIONS) -> dict[str, object]:
    """The dynamic-security plugin's first configuration file: one client, ``admin``, allowed
    the control topic only; every other client starts with nothing (defaultACLAccess)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    control = f"{DYNSEC_TOPIC.rsplit('/', 1)[0]}/#"
    return {
        "clients": [{"username": admin, "textname": "Kota Cerdas provisioning (kota devices)",
                     "password": base64.b64encode(digest).decode("ascii"),
                     "salt": base64.b64encode(salt).decode("ascii"),
                     "iterations": iterations, "roles": [{"rolename": "dynsec-admin"}]}],
        "roles": [{"rolename": "dynsec-admin", "acls": [
            {"acltype": "publishClientSend", "topic": control, "allow": True},
            {"acltype": "publishClientReceive", "topic": control, "allow": True},
            {"acltype": "subscribePattern", "topic": control, "allow": True},
            {"acltype": "unsubscribePattern", "topic": control, "allow": True}]}],
        "groups": [],
        # Nothing by default. The plugin's own default lets its clients receive any topic they
        # manage to subscribe to: Mosquitto 2.0.11 granted kota-provisioner kota/# and
        # delivered readings to it (tests/deploy/test_provisioning.py).
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                             "subscribe": False, "unsubscribe": True},
    }
