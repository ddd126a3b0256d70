"""The runbooks' escalation matrix as planner steps: the defaults the policy models will load.

Targets name org roles (``role:<slug>``) or the backup on call of a role's rotation
(``backup:<slug>``); "role:on-call-engineer" is the primary on call, an org role backed by the
primary rotation. Sources: incident-response-guide.md "Escalation Matrix" / "When to Escalate",
incident-escalation-flow.md per-severity flows, incident-response-playbook.md "Escalation Chain".
"""

from datetime import timedelta

from .planner import NOT_ACKNOWLEDGED, NOT_RESOLVED, Step

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
ON_CALL = "role:on-call-engineer"

# P0: on call, DevOps Lead and Backend Lead at once, until resolved (a P0 acknowledged by one
# lead still needs the others: "Immediate to DevOps Lead and Backend Lead"); manager after 2 h
# unresolved; CTO after 4 h ("Extended outage: P0 > 4 hours").
P0 = (
    Step(
        "p0-immediate",
        timedelta(0),
        NOT_RESOLVED,
        (ON_CALL, "role:devops-lead", "role:backend-lead"),
        label="P0: on-call engineer, DevOps Lead and Backend Lead, immediately",
    ),
    Step(
        "p0-backup",
        15 * MINUTE,
        NOT_ACKNOWLEDGED,
        ("backup:on-call-engineer",),
        label="P0 not acknowledged within its 15-minute SLA: backup on call",
    ),
    Step(
        "p0-manager",
        2 * HOUR,
        NOT_RESOLVED,
        ("role:engineering-manager",),
        label="P0 unresolved after 2 hours: Engineering Manager",
    ),
    Step("p0-cto", 4 * HOUR, NOT_RESOLVED, ("role:cto",), label="P0 unresolved after 4 hours: CTO"),
)

# P1: on call at once; team leads after 2 h, manager after 4 h, executives after 8 h unresolved.
P1 = (
    Step("p1-oncall", timedelta(0), NOT_ACKNOWLEDGED, (ON_CALL,), label="P1: on-call engineer"),
    Step(
        "p1-leads",
        2 * HOUR,
        NOT_RESOLVED,
        ("role:devops-lead", "role:backend-lead", "role:frontend-lead"),
        label="P1 unresolved after 2 hours: team leads",
    ),
    Step(
        "p1-manager",
        4 * HOUR,
        NOT_RESOLVED,
        ("role:engineering-manager",),
        label="P1 unresolved after 4 hours: Engineering Manager",
    ),
    Step("p1-cto", 8 * HOUR, NOT_RESOLVED, ("role:cto",), label="P1 unresolved after 8 hours: CTO"),
)

# P2: on call; team lead after 24 hours unresolved. P3: no escalation (the queue).
P2 = (
    Step("p2-oncall", timedelta(0), NOT_ACKNOWLEDGED, (ON_CALL,), label="P2: on-call engineer"),
    Step(
        "p2-lead",
        24 * HOUR,
        NOT_RESOLVED,
        ("role:devops-lead", "role:backend-lead"),
        label="P2 unresolved after 24 hours: team lead",
    ),
)
P3: tuple[Step, ...] = ()

# The playbook's P1-P4 chain: 0-15 min on call, 15-30 team lead, 30-60 manager, 60+ CTO.
PLAYBOOK_CHAIN = (
    Step("chain-oncall", timedelta(0), NOT_ACKNOWLEDGED, (ON_CALL,), label="Level 1: on call"),
    Step(
        "chain-lead",
        15 * MINUTE,
        NOT_ACKNOWLEDGED,
        ("role:devops-lead", "role:backend-lead"),
        label="Level 2 (15 min): team lead",
    ),
    Step(
        "chain-manager",
        30 * MINUTE,
        NOT_RESOLVED,
        ("role:engineering-manager",),
        label="Level 3 (30 min): Engineering Manager",
    ),
    Step("chain-cto", 60 * MINUTE, NOT_RESOLVED, ("role:cto",), label="Level 4 (60 min): CTO"),
)

DEFAULT_POLICIES: dict[str, tuple[Step, ...]] = {"P0": P0, "P1": P1, "P2": P2, "P3": P3}
PLAYBOOK_POLICIES: dict[str, tuple[Step, ...]] = {
    "P1": PLAYBOOK_CHAIN,
    "P2": PLAYBOOK_CHAIN,
    "P3": PLAYBOOK_CHAIN[:2],
    "P4": PLAYBOOK_CHAIN[:1],
}

# Flag rules add steps whenever an incident is (or becomes) flagged.
FLAG_RULES: dict[str, tuple[Step, ...]] = {
    "security": (
        Step(
            "flag-security",
            timedelta(0),
            NOT_RESOLVED,
            ("role:security-team",),
            label="Security incident: Security Team, immediately",
        ),
    ),
    "data_loss": (
        Step(
            "flag-data-loss",
            timedelta(0),
            NOT_RESOLVED,
            ("role:backend-lead", "role:engineering-manager"),
            label="Data loss: Backend Lead and Engineering Manager, immediately",
        ),
    ),
}


def steps_for(severity: str, *, security: bool = False, data_loss: bool = False) -> list[Step]:
    """The default snapshot for an incident of this severity and these flags."""
    try:
        steps = list(DEFAULT_POLICIES[severity])
    except KeyError:
        steps = list(PLAYBOOK_POLICIES.get(severity, ()))
    if security:
        steps += FLAG_RULES["security"]
    if data_loss:
        steps += FLAG_RULES["data_loss"]
    return steps


# Which steps each severity preset's levels get (incidents/presets.py). The SEV scale follows
# the guide's matrix level for level.
PRESET_POLICIES: dict[str, dict[str, tuple[Step, ...]]] = {
    "default": DEFAULT_POLICIES,
    "playbook": PLAYBOOK_POLICIES,
    "sev": {"SEV-1": P0, "SEV-2": P1, "SEV-3": P2, "SEV-4": P3},
}
FLAG_POLICY_NAMES = {"security": "Security incident", "data_loss": "Data loss"}
