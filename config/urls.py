from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from escalation.link_views import acknowledge_handoff, acknowledge_incident
from escalation.views import person_calendar, rotation_calendar
from ops.views import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", health, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("calendar/rotation/<str:token>.ics", rotation_calendar, name="rotation-calendar"),
    path("calendar/person/<str:token>.ics", person_calendar, name="person-calendar"),
    path("handoff/acknowledge/<str:token>/", acknowledge_handoff, name="handoff-acknowledge"),
    path("incident/acknowledge/<str:token>/", acknowledge_incident, name="escalation-ack"),
]
