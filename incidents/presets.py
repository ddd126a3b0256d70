"""Severity scales extracted from the incident-response runbooks.

Plain data, no Django imports. Values come from the runbooks in
``/work/shared/reference/``; where a runbook is silent on a field, the closest value it
implies is used (marked "not stated" below). docs/runbook-sources.md maps each value to the
file and section it came from and lists the places where the documents disagree.

Three scales are shipped:

* ``default``  - P0-P3 of incident-response-guide.md + incident-escalation-flow.md
  (the policy the portal ships with; wins wherever documents disagree).
* ``playbook`` - P1-P4 of incident-response-playbook.md.
* ``sev``      - SEV-1..SEV-4 of emergency-procedures.md.

Conventions:

* ``response_time`` is the acknowledgement SLA, ``resolution_target`` the resolution SLA,
  both measured from declaration.
* When ``*_in_business_days`` is True, ``timedelta(days=N)`` means N working days of
  the business calendar (see ``DEFAULT_BUSINESS_CALENDAR``), not N calendar days.
* ``stakeholder_email_within`` / ``status_page_within`` are deadlines after declaration.
  For some levels the runbook makes the message conditional on the incident still being
  open at that point (P1: status page "if >2 hours", stakeholder email "if >4 hours");
  the deadline is then that threshold and the message is owed only if the incident is
  still unresolved when it is reached. ``None`` means the runbook does not require it.
"""

from dataclasses import dataclass
from datetime import time, timedelta


@dataclass(frozen=True)
class SeverityPreset:
    code: str  # "P0", "P1", "SEV-1" ...
    name: str  # "Critical", "High", ...
    rank: int  # 0 = most severe, increasing
    definition: str  # one or two sentences, from the document
    examples: tuple[str, ...]
    response_time: timedelta  # acknowledgement SLA
    response_in_business_days: bool  # True: response_time=timedelta(days=N) means N working days
    resolution_target: timedelta
    resolution_in_business_days: bool
    internal_update_every: timedelta | None  # internal update cadence, None if not stated
    external_update_every: timedelta | None  # external/status-page update cadence if stated
    war_room_required: bool
    stakeholder_email_within: timedelta | None  # deadline after declaration, None if not required
    status_page_within: timedelta | None  # deadline after declaration, None if not required
    review_required: bool  # post-incident review always required
    review_required_if_longer_than: timedelta | None  # e.g. P1 lasting > 4 h requires a review


@dataclass(frozen=True)
class Preset:
    name: str  # machine name: "default", "playbook", "sev"
    title: str  # human title
    source: str  # which runbook file(s)
    levels: tuple[SeverityPreset, ...]


@dataclass(frozen=True)
class BusinessCalendarPreset:
    timezone: str
    workdays: tuple[int, ...]  # Monday=0
    start: time
    end: time


# The runbooks use "1 business day" (P3 acknowledgement) and "Business hours" (Backend Lead
# availability) without defining them; all their timestamps and the on-call rotation are in
# UTC. These are therefore the portal defaults, not runbook values.
DEFAULT_BUSINESS_CALENDAR = BusinessCalendarPreset("UTC", (0, 1, 2, 3, 4), time(9), time(17))


# ---------------------------------------------------------------------------
# default: P0-P3, incident-response-guide.md + incident-escalation-flow.md
# ---------------------------------------------------------------------------

_DEFAULT_LEVELS = (
    SeverityPreset(
        code="P0",
        name="Critical",
        rank=0,
        definition="Complete service outage or data loss affecting all users.",
        examples=(
            "Application completely inaccessible",
            "Database corruption or data loss",
            "Security breach or data leak",
            "Authentication system failure",
        ),
        response_time=timedelta(minutes=15),
        response_in_business_days=False,
        resolution_target=timedelta(hours=2),
        resolution_in_business_days=False,
        internal_update_every=timedelta(minutes=30),
        external_update_every=None,
        war_room_required=True,
        stakeholder_email_within=timedelta(minutes=30),
        status_page_within=timedelta(minutes=15),
        review_required=True,
        review_required_if_longer_than=None,
    ),
    SeverityPreset(
        code="P1",
        name="High",
        rank=1,
        definition="Core functionality unavailable but service is partially accessible.",
        examples=(
            "Asset registration not working",
            "Login failures for some users",
            "Admin functions unavailable",
            "Database performance severely degraded",
            "Email notifications failing",
        ),
        response_time=timedelta(hours=1),
        response_in_business_days=False,
        resolution_target=timedelta(hours=8),
        resolution_in_business_days=False,
        internal_update_every=timedelta(hours=1),
        external_update_every=None,
        # War room only "if escalated to manager" (flow: War Room Protocol).
        war_room_required=False,
        # "Stakeholders: Email if >4 hours" (owed only if still open at 4 h).
        stakeholder_email_within=timedelta(hours=4),
        # "External: Status page update if >2 hours" (owed only if still open at 2 h).
        status_page_within=timedelta(hours=2),
        review_required=False,
        review_required_if_longer_than=timedelta(hours=4),
    ),
    SeverityPreset(
        code="P2",
        name="Medium",
        rank=2,
        definition=(
            "Service operational but with reduced performance or non-critical features unavailable."
        ),
        examples=(
            "Slow page load times (>5 seconds)",
            "Intermittent errors for specific features",
            "CSV export failures",
            "MFA/Passkey enrollment issues",
            "Search functionality slow",
        ),
        response_time=timedelta(hours=4),
        response_in_business_days=False,
        resolution_target=timedelta(hours=48),
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=False,
        # "Stakeholders: Update if escalated"; P2 escalates "After 24 hours if unresolved".
        stakeholder_email_within=timedelta(hours=24),
        # "External: Not required unless prolonged" ("prolonged" is not quantified).
        status_page_within=None,
        review_required=False,
        review_required_if_longer_than=None,
    ),
    SeverityPreset(
        code="P3",
        name="Low",
        rank=3,
        definition="Cosmetic issues or non-critical features with workarounds available.",
        examples=(
            "UI display issues",
            "Typos in error messages",
            "Minor documentation errors",
            "Non-critical feature requests",
        ),
        response_time=timedelta(days=1),
        response_in_business_days=True,
        resolution_target=timedelta(weeks=1),
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=False,
        stakeholder_email_within=None,
        status_page_within=None,
        review_required=False,
        review_required_if_longer_than=None,
    ),
)


# ---------------------------------------------------------------------------
# playbook: P1-P4, incident-response-playbook.md
# The playbook gives only response times and examples. Resolution targets are not
# stated; they are taken from the default-scale level with the same response time
# (P1=P0, P2=P1, P3=P2, P4=P3). See docs/runbook-sources.md.
# ---------------------------------------------------------------------------

_PLAYBOOK_LEVELS = (
    SeverityPreset(
        code="P1",
        name="Critical",
        rank=0,
        definition=(
            "Complete system outage, data breach or security incident, payment processing "
            "failure, or data loss or corruption."
        ),
        examples=(
            "Complete system outage",
            "Data breach or security incident",
            "Payment processing failure",
            "Data loss or corruption",
        ),
        response_time=timedelta(minutes=15),
        response_in_business_days=False,
        resolution_target=timedelta(hours=2),  # not stated; default P0
        resolution_in_business_days=False,
        # "[P1] System Issue Detected ... Next update: In 15 minutes"
        internal_update_every=timedelta(minutes=15),
        external_update_every=None,
        war_room_required=False,  # the playbook has no war room (uses an incident channel)
        # Initial communication email, Phase 2: Response & Communication (5-15 minutes).
        stakeholder_email_within=timedelta(minutes=15),
        status_page_within=None,
        review_required=True,  # Phase 6: Post-Mortem (Within 48 hours), template P[1-4]
        review_required_if_longer_than=None,
    ),
    SeverityPreset(
        code="P2",
        name="High",
        rank=1,
        definition=(
            "Major feature unavailable, authentication system down, performance degradation "
            ">50%, or integration failures."
        ),
        examples=(
            "Major feature unavailable",
            "Authentication system down",
            "Performance degradation >50%",
            "Integration failures (Xero, Shopify)",
        ),
        response_time=timedelta(hours=1),
        response_in_business_days=False,
        resolution_target=timedelta(hours=8),  # not stated; default P1
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=False,
        stakeholder_email_within=None,
        status_page_within=None,
        review_required=True,
        review_required_if_longer_than=None,
    ),
    SeverityPreset(
        code="P3",
        name="Medium",
        rank=2,
        definition=(
            "Minor feature broken, slow API responses, non-critical integration issues, or "
            "UI/UX bugs affecting workflow."
        ),
        examples=(
            "Minor feature broken",
            "Slow API responses",
            "Non-critical integration issues",
            "UI/UX bugs affecting workflow",
        ),
        response_time=timedelta(hours=4),
        response_in_business_days=False,
        resolution_target=timedelta(hours=48),  # not stated; default P2
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=False,
        stakeholder_email_within=None,
        status_page_within=None,
        review_required=True,
        review_required_if_longer_than=None,
    ),
    SeverityPreset(
        code="P4",
        name="Low",
        rank=3,
        definition=(
            "Cosmetic issues, minor bugs, documentation errors, or non-blocking improvements."
        ),
        examples=(
            "Cosmetic issues",
            "Minor bugs",
            "Documentation errors",
            "Non-blocking improvements",
        ),
        response_time=timedelta(hours=24),
        response_in_business_days=False,
        resolution_target=timedelta(weeks=1),  # not stated; default P3
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=False,
        stakeholder_email_within=None,
        status_page_within=None,
        review_required=True,
        review_required_if_longer_than=None,
    ),
)


# ---------------------------------------------------------------------------
# sev: SEV-1..SEV-4, emergency-procedures.md
# The document gives only criteria and a response statement per level. Resolution
# targets are not stated; they are taken from the default-scale level of the same rank
# (SEV-1=P0 ... SEV-4=P3). See docs/runbook-sources.md.
# ---------------------------------------------------------------------------

_SEV_LEVELS = (
    SeverityPreset(
        code="SEV-1",
        name="Critical",
        rank=0,
        definition=(
            "Production down: system completely unavailable, data loss occurring, or "
            "security breach active."
        ),
        examples=(
            "System completely unavailable",
            "Data loss occurring",
            "Security breach active",
        ),
        response_time=timedelta(0),  # "Response: Immediate, all hands"
        response_in_business_days=False,
        resolution_target=timedelta(hours=2),  # not stated; default P0
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=True,  # "all hands"
        # Production System Down, 3. COMMUNICATE: "Alert stakeholders immediately",
        # "Post status update".
        stakeholder_email_within=timedelta(0),
        status_page_within=timedelta(0),
        review_required=True,  # Post-Incident: "Full post-mortem written" within 24 h
        review_required_if_longer_than=None,
    ),
    SeverityPreset(
        code="SEV-2",
        name="Major",
        rank=1,
        definition=(
            "Significant impact: major feature broken, performance severely degraded, or "
            "partial data loss."
        ),
        examples=(
            "Major feature broken",
            "Performance severely degraded",
            "Partial data loss",
        ),
        response_time=timedelta(hours=1),  # "Response: Within 1 hour"
        response_in_business_days=False,
        resolution_target=timedelta(hours=8),  # not stated; default P1
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=False,
        stakeholder_email_within=None,
        status_page_within=None,
        review_required=True,
        review_required_if_longer_than=None,
    ),
    SeverityPreset(
        code="SEV-3",
        name="Minor",
        rank=2,
        definition=(
            "Limited impact: non-critical feature broken, workaround available, no data loss."
        ),
        examples=(
            "Non-critical feature broken",
            "Workaround available",
            "No data loss",
        ),
        response_time=timedelta(hours=24),  # "Response: Within 24 hours"
        response_in_business_days=False,
        resolution_target=timedelta(hours=48),  # not stated; default P2
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=False,
        stakeholder_email_within=None,
        status_page_within=None,
        review_required=True,
        review_required_if_longer_than=None,
    ),
    SeverityPreset(
        code="SEV-4",
        name="Low",
        rank=3,
        definition="Minimal impact: cosmetic issues, minor bugs, documentation errors.",
        examples=(
            "Cosmetic issues",
            "Minor bugs",
            "Documentation errors",
        ),
        # "Response: Normal queue" - no time stated; default P3 (ticket added to the
        # backlog, acknowledged within 1 business day).
        response_time=timedelta(days=1),
        response_in_business_days=True,
        resolution_target=timedelta(weeks=1),  # not stated; default P3
        resolution_in_business_days=False,
        internal_update_every=None,
        external_update_every=None,
        war_room_required=False,
        stakeholder_email_within=None,
        status_page_within=None,
        review_required=True,
        review_required_if_longer_than=None,
    ),
)


PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        title="Default (P0-P3)",
        source="incident-response-guide.md + incident-escalation-flow.md",
        levels=_DEFAULT_LEVELS,
    ),
    "playbook": Preset(
        name="playbook",
        title="Incident Response Playbook (P1-P4)",
        source="incident-response-playbook.md",
        levels=_PLAYBOOK_LEVELS,
    ),
    "sev": Preset(
        name="sev",
        title="Emergency Procedures (SEV-1 to SEV-4)",
        source="emergency-procedures.md",
        levels=_SEV_LEVELS,
    ),
}

DEFAULT_PRESET = "default"
