"""The metrics dashboard in the admin: a GET form, the figures of ``incidents.metrics``, charts
drawn as inline SVG on the server (no JavaScript), and the CSV of the rows behind them.

Both views are wrapped in ``admin.site.admin_view`` (config/urls.py) for the login, and refuse
anyone without ``incidents.view_incident``.
"""

import math
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from . import metrics
from .models import Incident, SeverityLevel

PERMISSION = "incidents.view_incident"


class MetricsForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    severity = forms.ModelChoiceField(
        SeverityLevel.objects.all(),
        required=False,
        empty_label="All severities",
        to_field_name="code",
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", "The period must end on or after its start.")
        return data


@dataclass(frozen=True)
class Filters:
    form: MetricsForm
    period: metrics.Period
    severity: SeverityLevel | None

    def query(self) -> str:
        params = {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()}
        if self.severity is not None:
            params["severity"] = self.severity.code
        return urlencode(params)


def read_filters(params, today: date) -> Filters:
    """The form bound to the request, with the default period filling what it leaves blank.

    Binding the defaults (rather than using ``initial``) makes the form show the period the
    figures are for. An invalid form keeps its errors and the figures fall back to the default.
    """
    default = metrics.Period.last_days(today)
    data = {"start": default.start.isoformat(), "end": default.end.isoformat(), "severity": ""}
    data.update({key: params[key] for key in data if params.get(key)})
    form = MetricsForm(data)
    if not form.is_valid():
        return Filters(form, default, None)
    cleaned = form.cleaned_data
    return Filters(form, metrics.Period(cleaned["start"], cleaned["end"]), cleaned["severity"])


def _require_permission(request) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def metrics_view(request):
    _require_permission(request)
    now = timezone.now()
    filters = read_filters(request.GET, now.date())
    figures = metrics.dashboard(
        Incident.objects.visible_to(request.user), filters.period, filters.severity, now=now
    )
    breaches = [
        (breach, reverse("admin:incidents_incident_change", args=[breach.pk]))
        for breach in figures.breaches
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Incident metrics",
        "form": filters.form,
        "dashboard": figures,
        "breaches": breaches,
        "month_chart": month_chart(figures.months),
        "severity_chart": severity_chart(figures.severities),
        "export_url": f"{reverse('metrics-export')}?{filters.query()}",
    }
    return render(request, "admin/metrics.html", context)


def metrics_export(request):
    _require_permission(request)
    now = timezone.now()
    filters = read_filters(request.GET, now.date())
    if filters.form.errors:
        return HttpResponseBadRequest(
            "; ".join(
                f"{name}: {' '.join(errors)}" for name, errors in filters.form.errors.items()
            ),
            content_type="text/plain",
        )
    rows = metrics.csv_rows(
        Incident.objects.visible_to(request.user), filters.period, filters.severity, now=now
    )
    response = StreamingHttpResponse(metrics.csv_lines(rows), content_type="text/csv")
    suffix = f"-{slugify(filters.severity.code)}" if filters.severity else ""
    name = f"incidents-{filters.period.start}-to-{filters.period.end}{suffix}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- charts: geometry here, drawing in the template ------------------------------------------

CHART_WIDTH = 760


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    # The breached part, drawn over the bar where it starts (bottom, or left when horizontal).
    breached_x: str
    breached_y: str
    breached_width: str
    breached_height: str
    label: str  # axis label, may be empty to avoid crowding
    title: str  # the tooltip: every figure of the bar in words
    value: str
    label_x: str
    label_y: str
    value_x: str
    value_y: str


@dataclass(frozen=True)
class Tick:
    y: str
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    baseline: str
    bars: list[Bar]
    ticks: list[Tick]


def _n(value: float) -> str:
    # SVG wants a dot decimal, whatever the locale the template would format floats in.
    return f"{value:.1f}"


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def month_chart(months: list[metrics.Group]) -> Chart:
    """Vertical bars, one a month: incidents, with the breached ones in red at the bottom."""
    top, bottom, left, right, height = 12, 30, 44, 8, 220
    plot_height = height - top - bottom
    scale = nice_ceiling(max((month.count for month in months), default=0))
    slot = (CHART_WIDTH - left - right) / max(len(months), 1)
    bar_width = max(slot * 0.7, 1)
    # At most about twelve month labels, so they never overlap.
    every = max(1, math.ceil(len(months) / 12))
    bars = []
    for index, month in enumerate(months):
        bar_height = month.count / scale * plot_height
        breached_height = month.breached / scale * plot_height
        x = left + index * slot + (slot - bar_width) / 2
        bars.append(
            Bar(
                x=_n(x),
                y=_n(top + plot_height - bar_height),
                width=_n(bar_width),
                height=_n(bar_height),
                breached_x=_n(x),
                breached_y=_n(top + plot_height - breached_height),
                breached_width=_n(bar_width),
                breached_height=_n(breached_height),
                label=f"{month.key:%b %y}" if index % every == 0 else "",
                title=f"{month.label}: {month.count} incidents, {month.breached} breached",
                value=str(month.count) if month.count and len(months) <= 24 else "",
                label_x=_n(x + bar_width / 2),
                label_y=_n(height - bottom + 16),
                value_x=_n(x + bar_width / 2),
                value_y=_n(top + plot_height - bar_height - 3),
            )
        )
    ticks = [
        Tick(_n(top + plot_height - fraction * plot_height), _tick_label(scale * fraction))
        for fraction in (0, 0.5, 1)
    ]
    return Chart(CHART_WIDTH, height, left, CHART_WIDTH - right, _n(top + plot_height), bars, ticks)


def _tick_label(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def severity_chart(severities: list[metrics.SeverityFigures]) -> Chart:
    """Horizontal bars, one per severity: incidents, the breached part in red, compliance."""
    top, row, left, text_room = 6, 30, 56, 330
    height = top * 2 + row * max(len(severities), 1)
    plot_width = CHART_WIDTH - left - text_room
    scale = max((level.count for level in severities), default=0) or 1
    bars = []
    for index, level in enumerate(severities):
        y = top + index * row + 5
        bar_width = level.count / scale * plot_width
        breached_width = level.breached / scale * plot_width
        summary = (
            f"{level.count} incidents, {level.breached} breached; "
            f"ack {level.acknowledge.percent}, resolution {level.resolution.percent}"
        )
        bars.append(
            Bar(
                x=_n(left),
                y=_n(y),
                width=_n(bar_width),
                height=_n(row - 10),
                breached_x=_n(left),
                breached_y=_n(y),
                breached_width=_n(breached_width),
                breached_height=_n(row - 10),
                label=level.code,
                title=f"{level.code} {level.name}: {summary}",
                value=summary.replace("; ", " · "),
                label_x=_n(left - 8),
                label_y=_n(y + (row - 10) / 2 + 4),
                value_x=_n(left + bar_width + 6),
                value_y=_n(y + (row - 10) / 2 + 4),
            )
        )
    return Chart(CHART_WIDTH, height, left, CHART_WIDTH - text_room, "", bars, [])
