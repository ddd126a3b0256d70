from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from comms.admin_views import log_message_view, post_update_view, public_face_view
from comms.status_views import status_feed, status_page, status_summary
from comms.unsubscribe_views import unsubscribe
from config.api import api_not_found, v1_urls
from escalation.link_views import acknowledge_handoff, acknowledge_incident
from escalation.views import person_calendar, rotation_calendar
from incidents.metrics_views import metrics_export, metrics_view
from ops.views import health

urlpatterns = [
    # The API first: monitoring's alerts are the most frequent requests (config/api.py).
    path("api/v1/", include((v1_urls(), "api"), namespace="v1")),
    path("admin/metrics/", admin.site.admin_view(metrics_view), name="metrics"),
    path("admin/metrics/export.csv", admin.site.admin_view(metrics_export), name="metrics-export"),
    # The incident's communications pages live beside its admin page.
    path(
        "admin/incidents/incident/<int:pk>/post-update/",
        admin.site.admin_view(post_update_view),
        name="comms-post-update",
    ),
    path(
        "admin/incidents/incident/<int:pk>/log-message/",
        admin.site.admin_view(log_message_view),
        name="comms-log-message",
    ),
    path(
        "admin/incidents/incident/<int:pk>/public-face/",
        admin.site.admin_view(public_face_view),
        name="comms-public-face",
    ),
    path("admin/", admin.site.urls),
    path("api/health", health, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Anything else under /api/ is a JSON 404, like every other API error.
    re_path(r"^api/", api_not_found),
    path("calendar/rotation/<str:token>.ics", rotation_calendar, name="rotation-calendar"),
    path("calendar/person/<str:token>.ics", person_calendar, name="person-calendar"),
    path("handoff/acknowledge/<str:token>/", acknowledge_handoff, name="handoff-acknowledge"),
    path("incident/acknowledge/<str:token>/", acknowledge_incident, name="escalation-ack"),
    path("status/", status_page, name="status-page"),
    path("status/feed.atom", status_feed, name="status-feed"),
    path("status/summary.json", status_summary, name="status-summary"),
    path("unsubscribe/<str:token>/", unsubscribe, name="comms-unsubscribe"),
]
