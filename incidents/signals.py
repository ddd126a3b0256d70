"""The one hook other apps use to follow incidents, so the arrows point one way.

``incidents`` knows nothing of escalation or communications. Each service function that
changes what an escalation depends on (declaration, acknowledgement, status, severity, flags,
milestones) sends ``incident_changed`` inside its own transaction, so a receiver's writes (an
escalation snapshot, its next due time) commit or roll back with the change itself.
"""

from django.dispatch import Signal

# kwargs: incident (locked, saved), change (one of CHANGES), now, by
incident_changed = Signal()
CHANGES = ("declared", "acknowledged", "status", "severity", "flags", "milestone")

# kwargs: preset (its name), codes (the severity codes it made active). Sent by load_policy.
severity_scale_loaded = Signal()
