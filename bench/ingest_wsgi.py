"""The portal's WSGI application plus benchmark-only endpoints, for bench/ingest.py.

Each reads the JSON body and does one INSERT into ``bench_ping`` (a table bench/ingest.py
creates with raw SQL in its own database; it is no model of the product) through Django's
database connection: same gunicorn, same workers, same connection settings, same database as
``POST /api/v1/events/``, and no other logic. They differ in how much framework is around it:

* ``POST /bench/baseline-django/``: a plain Django view (middleware, URL resolution): **the
  baseline** of bench/ingest.py's ratio. It is the issue's "baseline endpoint that does one
  insert into a one-table model with no logic" inside the framework the events endpoint runs
  in: the events endpoint is a Django view too (a valid trigger takes its quick path, without
  DRF's request and response), so every request of the portal pays Django's request handling,
  and the ratio is then the cost of ingestion's own logic and SQL;
* ``POST /bench/baseline/``: the WSGI application itself, before Django (a reference: what
  Django's request handling costs; no endpoint of the portal can be served without it);
* ``POST /bench/baseline-drf/``: a DRF APIView (Django's, plus DRF's request, parser,
  content negotiation and renderer, as the events endpoint's slow path has; a reference).

The last two views are added to the URLconf in this process only. Every other request is the
portal.

    gunicorn --pythonpath .,bench ingest_wsgi:application
"""

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import close_old_connections, connection  # noqa: E402

django_application = get_wsgi_application()

WSGI_PATH = "/bench/baseline/"  # the WSGI reference, not the baseline (above)


def insert(payload) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_ping (at, body) VALUES (now(), %s::jsonb) RETURNING id",
            [json.dumps(payload)],
        )
        (row_id,) = cursor.fetchone()
    return row_id


def _framework_baselines() -> None:
    from django.http import JsonResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt
    from rest_framework.parsers import JSONParser
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from config import urls

    @csrf_exempt
    def django_baseline(request):  # the baseline
        try:
            payload = json.loads(request.body)
        except ValueError:
            return JsonResponse({"detail": "Not JSON."}, status=400)
        return JsonResponse({"status": "success", "id": insert(payload)}, status=202)

    class DrfBaseline(APIView):
        authentication_classes = []
        permission_classes = [AllowAny]
        throttle_classes = []
        parser_classes = [JSONParser]

        def post(self, request):
            return Response({"status": "success", "id": insert(request.data)}, status=202)

    urls.urlpatterns[:0] = [
        path("bench/baseline-django/", django_baseline),
        path("bench/baseline-drf/", DrfBaseline.as_view()),
    ]


_framework_baselines()


def _answer(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def wsgi_reference(environ, start_response) -> list[bytes]:
    # What Django's request_started / request_finished signals do for its own requests:
    # reuse the persistent connection (CONN_MAX_AGE), drop it when broken or too old.
    close_old_connections()
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        try:
            payload = json.loads(body)
        except ValueError:
            return _answer(start_response, "400 Bad Request", {"detail": "Not JSON."})
        return _answer(start_response, "202 Accepted", {"status": "success", "id": insert(payload)})
    finally:
        close_old_connections()


def application(environ, start_response):
    if environ.get("PATH_INFO") == WSGI_PATH and environ.get("REQUEST_METHOD") == "POST":
        return wsgi_reference(environ, start_response)
    return django_application(environ, start_response)
