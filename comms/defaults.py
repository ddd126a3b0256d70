# ruff: noqa: E501 - message templates: a line is a line of the message, not of code
"""The messages the portal ships: the runbooks' templates, in Django template syntax.

Sources (docs/runbook-sources.md): incident-response-guide.md "Step 3: Initial Communication",
"Communication (Throughout)", "Final Communication", "Update Template", "Status Page Update" and
"Email to Users"; incident-escalation-flow.md "Communication Templates" (the war-room line and
"Next update" of the P0 alert and progress update). An edited copy in the admin overrides one of
these (``comms.MessageTemplate``); "reset" restores it.

Two contexts: internal templates (alert, update, resolution, chat) see the incident; public
templates (status page, stakeholder email) see only its public face, so an edited public
template cannot reach an internal field.
"""

from dataclasses import dataclass

EMAIL, TEXT = "email", "text"
INTERNAL, PUBLIC = "internal", "public"


@dataclass(frozen=True)
class TemplateDefault:
    name: str
    kind: str  # EMAIL: subject + text + HTML; TEXT: text only (chat, status page)
    context: str  # INTERNAL or PUBLIC
    source: str
    body_text: str
    subject: str = ""
    body_html: str = ""


_HTML_HEAD = '<!doctype html>\n<html lang="en"><body style="font-family: system-ui, sans-serif; color: #111;">\n'
_HTML_TAIL = "</body></html>\n"

INITIAL_ALERT_TEXT = """INCIDENT ALERT - {{ severity.code }}
Incident ID: {{ incident.public_id }}
Time Detected: {{ incident.detected_at|date:"Y-m-d H:i" }} UTC
Severity: {{ severity.code }} - {{ severity.name }}
Impact: {{ impact }}
Status: {{ status }}
Assigned To: {{ assigned_to }}
ETA for Update: {% if next_update %}{{ next_update|date:"Y-m-d H:i" }} UTC{% else %}as needed{% endif %}
{% if war_room %}War Room: {{ war_room }}
{% endif %}
{{ incident.title }}
{% if incident.is_security %}Security incident: keep details to the incident channel.
{% endif %}{% if incident.is_data_loss %}Data loss reported.
{% endif %}{% if internal_update_every %}Updates will be provided every {{ internal_update_every }}.
{% endif %}{% if war_room %}DO NOT REPLY - Use war room for coordination.
{% endif %}{% if step %}
Why you are receiving this: {{ step.label|default:step.key }}{% if repetition %} (repeat {{ repetition }}){% endif %}{% if role %}, as {{ role }}{% endif %}.
{% endif %}{% if ack_url %}
Acknowledge (opens a confirmation page; nothing happens until you press its button):
{{ ack_url }}
{% endif %}
Open the incident: {{ incident_url }}
"""

INITIAL_ALERT_HTML = (
    _HTML_HEAD
    + """<h2 style="margin: 0 0 .5rem 0;">INCIDENT ALERT - {{ severity.code }}</h2>
<p style="font-size: 1.1rem; margin: 0 0 1rem 0;"><strong>{{ incident.title }}</strong></p>
<table cellpadding="4" style="border-collapse: collapse;">
  <tr><th align="left">Incident ID</th><td>{{ incident.public_id }}</td></tr>
  <tr><th align="left">Time Detected</th><td>{{ incident.detected_at|date:"Y-m-d H:i" }} UTC</td></tr>
  <tr><th align="left">Severity</th><td>{{ severity.code }} - {{ severity.name }}</td></tr>
  <tr><th align="left">Impact</th><td>{{ impact }}</td></tr>
  <tr><th align="left">Status</th><td>{{ status }}</td></tr>
  <tr><th align="left">Assigned To</th><td>{{ assigned_to }}</td></tr>
  <tr><th align="left">ETA for Update</th><td>{% if next_update %}{{ next_update|date:"Y-m-d H:i" }} UTC{% else %}as needed{% endif %}</td></tr>
  {% if war_room %}<tr><th align="left">War Room</th><td>{% if war_room_is_url %}<a href="{{ war_room }}">{{ war_room }}</a>{% else %}{{ war_room }}{% endif %}</td></tr>{% endif %}
</table>
{% if incident.is_security %}<p><strong>Security incident:</strong> keep details to the incident channel.</p>{% endif %}
{% if incident.is_data_loss %}<p><strong>Data loss reported.</strong></p>{% endif %}
{% if internal_update_every %}<p>Updates will be provided every {{ internal_update_every }}.</p>{% endif %}
{% if war_room %}<p><strong>DO NOT REPLY</strong> - use the war room for coordination.</p>{% endif %}
{% if step %}<p>Why you are receiving this: {{ step.label|default:step.key }}{% if repetition %} (repeat {{ repetition }}){% endif %}{% if role %}, as {{ role }}{% endif %}.</p>{% endif %}
{% if ack_url %}<p><a href="{{ ack_url }}" style="display: inline-block; padding: .5rem 1rem; background: #b91c1c; color: #fff; text-decoration: none; border-radius: 4px;">Acknowledge {{ incident.public_id }}</a><br>
<small>Opens a confirmation page; nothing happens until you press its button.</small></p>{% endif %}
<p><a href="{{ incident_url }}">Open the incident in the portal</a></p>
"""
    + _HTML_TAIL
)

UPDATE_TEXT = """INCIDENT UPDATE - {{ severity.code }}
Incident ID: {{ incident.public_id }}
Time: {{ now|date:"Y-m-d H:i" }} UTC ({{ elapsed }} elapsed)
Status: {{ status }}
Progress: {{ update.progress|default:"-" }}
Next Steps: {{ update.next_steps|default:"-" }}
ETA: {{ update.eta|default:"unknown" }}
Impact: {{ update.impact|default:impact }}
{% if war_room %}War Room: {{ war_room }}
{% endif %}
Next update: {% if next_update %}{{ next_update|date:"H:i" }} UTC or when resolved{% else %}when there is news{% endif %}

Open the incident: {{ incident_url }}
"""

UPDATE_HTML = (
    _HTML_HEAD
    + """<h2 style="margin: 0 0 .5rem 0;">INCIDENT UPDATE - {{ severity.code }}</h2>
<p style="font-size: 1.1rem; margin: 0 0 1rem 0;"><strong>{{ incident.public_id }}: {{ incident.title }}</strong></p>
<table cellpadding="4" style="border-collapse: collapse;">
  <tr><th align="left">Time</th><td>{{ now|date:"Y-m-d H:i" }} UTC ({{ elapsed }} elapsed)</td></tr>
  <tr><th align="left">Status</th><td>{{ status }}</td></tr>
  <tr><th align="left">Progress</th><td>{{ update.progress|default:"-"|linebreaksbr }}</td></tr>
  <tr><th align="left">Next Steps</th><td>{{ update.next_steps|default:"-"|linebreaksbr }}</td></tr>
  <tr><th align="left">ETA</th><td>{{ update.eta|default:"unknown" }}</td></tr>
  <tr><th align="left">Impact</th><td>{{ update.impact|default:impact|linebreaksbr }}</td></tr>
  {% if war_room %}<tr><th align="left">War Room</th><td>{{ war_room }}</td></tr>{% endif %}
</table>
<p>Next update: {% if next_update %}{{ next_update|date:"H:i" }} UTC or when resolved{% else %}when there is news{% endif %}</p>
<p><a href="{{ incident_url }}">Open the incident in the portal</a></p>
"""
    + _HTML_TAIL
)

RESOLVED_TEXT = """INCIDENT RESOLVED - {{ severity.code }}
Incident ID: {{ incident.public_id }}
Resolution Time: {{ resolved_at|date:"Y-m-d H:i" }} UTC
Duration: {{ duration }}
Root Cause: {{ root_cause|default:"Under investigation" }}
Resolution: {{ update.progress|default:"-" }}
Verification: {% if incident.verification_completed_at %}Service fully operational{% else %}Monitoring for stability{% endif %}
Next Steps: {% if review_required %}Post-incident review scheduled{% else %}None{% endif %}

Open the incident: {{ incident_url }}
"""

RESOLVED_HTML = (
    _HTML_HEAD
    + """<h2 style="margin: 0 0 .5rem 0;">INCIDENT RESOLVED - {{ severity.code }}</h2>
<p style="font-size: 1.1rem; margin: 0 0 1rem 0;"><strong>{{ incident.public_id }}: {{ incident.title }}</strong></p>
<table cellpadding="4" style="border-collapse: collapse;">
  <tr><th align="left">Resolution Time</th><td>{{ resolved_at|date:"Y-m-d H:i" }} UTC</td></tr>
  <tr><th align="left">Duration</th><td>{{ duration }}</td></tr>
  <tr><th align="left">Root Cause</th><td>{{ root_cause|default:"Under investigation" }}</td></tr>
  <tr><th align="left">Resolution</th><td>{{ update.progress|default:"-"|linebreaksbr }}</td></tr>
  <tr><th align="left">Verification</th><td>{% if incident.verification_completed_at %}Service fully operational{% else %}Monitoring for stability{% endif %}</td></tr>
  <tr><th align="left">Next Steps</th><td>{% if review_required %}Post-incident review scheduled{% else %}None{% endif %}</td></tr>
</table>
<p><a href="{{ incident_url }}">Open the incident in the portal</a></p>
"""
    + _HTML_TAIL
)

CHAT_UPDATE_TEXT = """🚨 INCIDENT UPDATE - {{ severity.code }}
────────────────────────
📋 ID: {{ incident.public_id }}
🕐 Time: {{ now|date:"Y-m-d H:i" }} UTC
📊 Status: {{ status }}
────────────────────────
📝 Summary:
{{ incident.title }}

🔍 Progress:
{{ update.progress|default:"-" }}

👉 Next Steps:
{{ update.next_steps|default:"-" }}

⏱ ETA: {{ update.eta|default:"unknown" }}
👥 Impact: {{ update.impact|default:impact }}
────────────────────────
{{ incident_url }}
"""

CHAT_RESOLVED_TEXT = """✅ {{ severity.code }} INCIDENT RESOLVED - {{ incident.public_id }}

Resolution Time: {{ resolved_at|date:"Y-m-d H:i" }} UTC
Duration: {{ duration }}
Severity: {{ severity.code }} - {{ severity.name }}

Summary:
{{ incident.title }}

Resolution:
{{ update.progress|default:"-" }}
{{ incident_url }}
"""

# The status page prints each post's time beside it, so the runbook's [Timestamp] line is not
# repeated in the text.
STATUS_INVESTIGATING_TEXT = """INVESTIGATING: We are aware of an issue affecting {{ services|default:"some of our services" }}.
Our team is actively investigating.
"""

STATUS_UPDATE_TEXT = """UPDATE: We have identified the cause and are implementing a fix.
"""

STATUS_RESOLVED_TEXT = """RESOLVED: The issue has been resolved. Service is fully operational.
"""

STAKEHOLDER_UPDATE_TEXT = """{{ title }}

Status: {{ status }}
Affected: {{ services|default:"-" }}
Started: {{ started_at|date:"Y-m-d H:i" }} UTC

{{ public_text }}

{% if next_update %}Next update by {{ next_update|date:"Y-m-d H:i" }} UTC.{% else %}We will write again when there is news.{% endif %}

--
You receive this as a stakeholder of {{ organisation }} services.
Unsubscribe: {{ unsubscribe_url }}
"""

STAKEHOLDER_UPDATE_HTML = (
    _HTML_HEAD
    + """<h2 style="margin: 0 0 .5rem 0;">{{ title }}</h2>
<p><strong>Status:</strong> {{ status }}<br>
<strong>Affected:</strong> {{ services|default:"-" }}<br>
<strong>Started:</strong> {{ started_at|date:"Y-m-d H:i" }} UTC</p>
<p>{{ public_text|linebreaksbr }}</p>
<p>{% if next_update %}Next update by {{ next_update|date:"Y-m-d H:i" }} UTC.{% else %}We will write again when there is news.{% endif %}</p>
<hr><p style="color: #555; font-size: .9rem;">You receive this as a stakeholder of {{ organisation }} services.
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
"""
    + _HTML_TAIL
)

USER_EMAIL_TEXT = """Dear {{ organisation }} Users,

We experienced a service disruption on {{ started_at|date:"Y-m-d" }} from {{ started_at|date:"H:i" }} to {{ resolved_at|date:"H:i" }} UTC.

What Happened:
{{ public_text|default:"A fault in one of our services." }}

Impact:
{{ services|default:"Some of our services" }} {% if services %}were{% else %}was{% endif %} unavailable or degraded for {{ duration }}.

Resolution:
The issue has been resolved. Service is fully operational.

Prevention:
We are reviewing what happened and will take steps to prevent it from recurring.

We apologize for any inconvenience caused.

{{ organisation }} Team

--
Unsubscribe: {{ unsubscribe_url }}
"""

USER_EMAIL_HTML = (
    _HTML_HEAD
    + """<p>Dear {{ organisation }} Users,</p>
<p>We experienced a service disruption on {{ started_at|date:"Y-m-d" }} from {{ started_at|date:"H:i" }} to {{ resolved_at|date:"H:i" }} UTC.</p>
<h3>What Happened</h3><p>{{ public_text|default:"A fault in one of our services."|linebreaksbr }}</p>
<h3>Impact</h3><p>{{ services|default:"Some of our services" }} {% if services %}were{% else %}was{% endif %} unavailable or degraded for {{ duration }}.</p>
<h3>Resolution</h3><p>The issue has been resolved. Service is fully operational.</p>
<h3>Prevention</h3><p>We are reviewing what happened and will take steps to prevent it from recurring.</p>
<p>We apologize for any inconvenience caused.</p>
<p>{{ organisation }} Team</p>
<hr><p style="color: #555; font-size: .9rem;"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
"""
    + _HTML_TAIL
)

GUIDE = "incident-response-guide.md"
FLOW = "incident-escalation-flow.md"

TEMPLATES: dict[str, TemplateDefault] = {
    "initial_alert": TemplateDefault(
        name="Initial alert (responders, email)",
        kind=EMAIL,
        context=INTERNAL,
        source=f"{GUIDE} Step 3: Initial Communication; {FLOW} P0 Initial Alert (war room)",
        subject="INCIDENT ALERT - {{ severity.code }} {{ incident.public_id }}: {{ incident.title }}",
        body_text=INITIAL_ALERT_TEXT,
        body_html=INITIAL_ALERT_HTML,
    ),
    "progress_update": TemplateDefault(
        name="Progress update (responders, email)",
        kind=EMAIL,
        context=INTERNAL,
        source=f"{GUIDE} Communication (Throughout); {FLOW} P0 Progress Update (next update)",
        subject="INCIDENT UPDATE - {{ severity.code }} {{ incident.public_id }}: {{ status }}",
        body_text=UPDATE_TEXT,
        body_html=UPDATE_HTML,
    ),
    "resolution_notice": TemplateDefault(
        name="Resolution notice (responders, email)",
        kind=EMAIL,
        context=INTERNAL,
        source=f"{GUIDE} Final Communication",
        subject="INCIDENT RESOLVED - {{ severity.code }} {{ incident.public_id }}: "
        "{{ incident.title }}",
        body_text=RESOLVED_TEXT,
        body_html=RESOLVED_HTML,
    ),
    "chat_update": TemplateDefault(
        name="Update (chat webhooks)",
        kind=TEXT,
        context=INTERNAL,
        source=f"{GUIDE} Internal Communication: Update Template",
        body_text=CHAT_UPDATE_TEXT,
    ),
    "chat_resolved": TemplateDefault(
        name="Resolution notice (chat webhooks)",
        kind=TEXT,
        context=INTERNAL,
        source=f"{FLOW} P0 Resolution Notice",
        body_text=CHAT_RESOLVED_TEXT,
    ),
    "status_investigating": TemplateDefault(
        name="Status page: investigating",
        kind=TEXT,
        context=PUBLIC,
        source=f"{GUIDE} External Communication: Status Page Update",
        body_text=STATUS_INVESTIGATING_TEXT,
    ),
    "status_update": TemplateDefault(
        name="Status page: update",
        kind=TEXT,
        context=PUBLIC,
        source=f"{GUIDE} External Communication: Status Page Update",
        body_text=STATUS_UPDATE_TEXT,
    ),
    "status_resolved": TemplateDefault(
        name="Status page: resolved",
        kind=TEXT,
        context=PUBLIC,
        source=f"{GUIDE} External Communication: Status Page Update",
        body_text=STATUS_RESOLVED_TEXT,
    ),
    "stakeholder_update": TemplateDefault(
        name="Stakeholder email: update",
        kind=EMAIL,
        context=PUBLIC,
        source=f"{FLOW} Communication: Stakeholders email (P0 within 30 minutes, P1 after 4 h)",
        subject="[{{ status }}] {{ title }}",
        body_text=STAKEHOLDER_UPDATE_TEXT,
        body_html=STAKEHOLDER_UPDATE_HTML,
    ),
    "stakeholder_resolved": TemplateDefault(
        name="Stakeholder email: resolved (email to users after significant downtime)",
        kind=EMAIL,
        context=PUBLIC,
        source=f"{GUIDE} External Communication: Email to Users",
        subject='[RESOLVED] Service Disruption - {{ started_at|date:"Y-m-d" }}',
        body_text=USER_EMAIL_TEXT,
        body_html=USER_EMAIL_HTML,
    ),
}
