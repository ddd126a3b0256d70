"""The public status page, its Atom feed and its JSON summary: no login, cacheable, read-only.

Each view builds the page once (``comms.status_page.build``, a constant number of queries) and
renders it. Caching: ``Cache-Control: public, max-age=30`` lets browsers and proxies keep a copy
for half a minute, and a strong ETag (a hash of the bytes sent) turns a reload into a 304.
The ETag is computed from the rendered response rather than from timestamps because some public
changes carry no time (a public title edited, a state set by hand, a template changed by a
deploy); hashing what is sent cannot miss any of them. The page's cost is its queries, which are
needed either way, so rendering before answering 304 costs little. There is no Last-Modified for
the same reason: it could not be trusted to move on every change.
"""

import hashlib
import uuid
from collections.abc import Callable

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import linebreaks
from django.views.decorators.cache import cache_control
from django.views.decorators.http import condition, require_safe

from . import status_page as pages

MAX_AGE = 30


def _page(request: HttpRequest) -> pages.StatusPage:
    # The ETag function and the view run on the same request; build the page once.
    if not hasattr(request, "_status_page"):
        request._status_page = pages.build(timezone.now())
    return request._status_page


def _render_page(request: HttpRequest) -> HttpResponse:
    page = _page(request)
    # Rendered without the request, so no context processor can touch the session or the user:
    # the response must not vary by cookie, or shared caches could not keep it.
    html = render_to_string(
        "status/page.html",
        {
            "page": page,
            "feed_url": reverse("status-feed"),
            "summary_url": reverse("status-summary"),
        },
    )
    return HttpResponse(html)


def _guid(key: str) -> str:
    # Derived from the site's configured URL, not the request's host, so an entry keeps its id
    # whichever name the page was fetched by.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{settings.SITE_URL}/status/{key}").urn


class StatusFeed(Feed):
    feed_type = Atom1Feed
    item_guid_is_permalink = False

    def get_object(self, request: HttpRequest) -> pages.StatusPage:
        return _page(request)

    def title(self, page: pages.StatusPage) -> str:
        return page.title

    def subtitle(self, page: pages.StatusPage) -> str:
        return "Public incident updates and scheduled maintenance."

    def link(self) -> str:
        return reverse("status-page")

    def feed_url(self) -> str:
        return reverse("status-feed")

    def feed_guid(self) -> str:
        return _guid("feed")

    def items(self, page: pages.StatusPage) -> list[pages.FeedEntry]:
        return pages.feed_entries(page)

    def item_title(self, entry: pages.FeedEntry) -> str:
        return entry.title

    def item_description(self, entry: pages.FeedEntry) -> str:
        # Atom's summary is typed HTML: the plain text is escaped here so that a reader never
        # interprets markup someone typed into an update.
        return linebreaks(entry.text, autoescape=True)

    def item_link(self, entry: pages.FeedEntry) -> str:
        page = reverse("status-page")
        return f"{page}#{entry.anchor}" if entry.anchor else page

    def item_guid(self, entry: pages.FeedEntry) -> str:
        return _guid(entry.key)

    def item_pubdate(self, entry: pages.FeedEntry):
        return entry.at

    def item_updateddate(self, entry: pages.FeedEntry):
        return entry.at

    def item_categories(self, entry: pages.FeedEntry) -> tuple[str, ...]:
        return entry.categories


_feed = StatusFeed()


def _render_feed(request: HttpRequest) -> HttpResponse:
    response = _feed(request)
    # The syndication view stamps the newest entry's date, which for announced maintenance
    # lies in the future; validation is by ETag alone (module docstring).
    response.headers.pop("Last-Modified", None)
    return response


def _render_summary(request: HttpRequest) -> HttpResponse:
    page = _page(request)
    url = request.build_absolute_uri(reverse("status-page"))
    response = JsonResponse(
        pages.summary(page, url), encoder=DjangoJSONEncoder, json_dumps_params={"indent": 2}
    )
    # Public data by design: a dashboard on another origin may read it.
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _etag_of(render: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], str]:
    def etag(request: HttpRequest) -> str:
        response = render(request)
        request._status_response = response
        return hashlib.sha256(response.content).hexdigest()

    return etag


def _rendered(request: HttpRequest, render: Callable[[HttpRequest], HttpResponse]):
    response = getattr(request, "_status_response", None)
    return response if response is not None else render(request)


@require_safe
@cache_control(public=True, max_age=MAX_AGE)
@condition(etag_func=_etag_of(_render_page))
def status_page(request: HttpRequest) -> HttpResponse:
    return _rendered(request, _render_page)


@require_safe
@cache_control(public=True, max_age=MAX_AGE)
@condition(etag_func=_etag_of(_render_feed))
def status_feed(request: HttpRequest) -> HttpResponse:
    return _rendered(request, _render_feed)


@require_safe
@cache_control(public=True, max_age=MAX_AGE)
@condition(etag_func=_etag_of(_render_summary))
def status_summary(request: HttpRequest) -> HttpResponse:
    return _rendered(request, _render_summary)
