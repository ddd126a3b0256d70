"""The unsubscribe link of stakeholder email: a GET shows a page, a POST unsubscribes."""

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import unsubscribe as links


def masked(email: str) -> str:
    """``j***@example.com``: enough for the reader to recognise the address, not enough for
    someone handed the link to learn it."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


# CSRF exemption: RFC 8058's one-click unsubscribe is a POST made by the mail provider's
# servers, with body ``List-Unsubscribe=One-Click`` and no cookie or CSRF token. The signed
# token in the URL is the authority: a forged request would need it, and all a token can do
# is unsubscribe the one address it was sent to.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    stakeholder = links.stakeholder_for(token)
    if stakeholder is None:
        return render(request, "comms/unsubscribe.html", {"invalid": True}, status=404)
    done = False
    if request.method == "POST":
        # The body is not read: the page's button and the one-click POST (urlencoded or
        # multipart) act alike, and a malformed body cannot turn into an error.
        links.unsubscribe(stakeholder, now=timezone.now())
        done = True
    context = {
        "stakeholder": stakeholder,
        "list_name": stakeholder.stakeholder_list.name,
        "address": masked(stakeholder.email),
        "done": done,
    }
    return render(request, "comms/unsubscribe.html", context)
