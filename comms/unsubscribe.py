"""The unsubscribe link of stakeholder email (RFC 8058 one-click, DESIGN.md principle 9).

The link carries the stakeholder's pk, signed with a salt used for nothing else. Unlike the
acknowledge link it never expires: an unsubscribe link must work in a mail read a year later,
and the worst it can do is what its holder is entitled to ask for. Opening it shows a page;
only a POST (the page's button, or the mail client's one-click POST) unsubscribes.
"""

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.db.models import QuerySet
from django.urls import reverse

from .models import Stakeholder

SALT = "comms.unsubscribe"
ONE_CLICK = "List-Unsubscribe=One-Click"


def _signer() -> signing.Signer:
    # A plain Signer, not signing.dumps: no timestamp to carry since nothing expires, so the
    # token is shorter and the same for every message to one stakeholder.
    return signing.Signer(salt=SALT)


def token_for(stakeholder: Stakeholder) -> str:
    return _signer().sign_object(stakeholder.pk)


def _url(token: str) -> str:
    return settings.SITE_URL + reverse("comms-unsubscribe", args=[token])


def url_for(stakeholder: Stakeholder) -> str:
    return _url(token_for(stakeholder))


def urls_for(pks: Iterable[int]) -> dict[int, str]:
    """Unsubscribe URLs by stakeholder pk, for a fan-out: signing only, no query."""
    signer = _signer()
    # One reverse() for the whole fan-out: the token is the only part that differs.
    prefix, suffix = _url("TOKEN").split("TOKEN")
    return {pk: f"{prefix}{signer.sign_object(pk)}{suffix}" for pk in pks}


def stakeholder_for(token: str) -> Stakeholder | None:
    """The stakeholder a token names; None for a cut or forged token, or a removed stakeholder."""
    try:
        pk = _signer().unsign_object(token)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(pk, int):
        return None
    return Stakeholder.objects.select_related("stakeholder_list").filter(pk=pk).first()


def headers_for_url(url: str) -> dict[str, str]:
    """RFC 2369 and RFC 8058 headers: the mail client shows an unsubscribe button whose POST
    reaches the URL with body ``List-Unsubscribe=One-Click``. Mail providers honour them only
    in a DKIM-signed message whose signature covers both headers."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": ONE_CLICK}


def unsubscribe(stakeholder: Stakeholder, now: datetime) -> bool:
    """Mark the stakeholder unsubscribed; True if this call did it, False if already done.

    A conditional update, so a double click or the mail client's POST racing the page's button
    keeps the first time."""
    changed = Stakeholder.objects.filter(pk=stakeholder.pk, unsubscribed_at__isnull=True).update(
        unsubscribed_at=now
    )
    stakeholder.refresh_from_db(fields=["unsubscribed_at"])
    return bool(changed)


def resubscribe(stakeholders: QuerySet[Stakeholder]) -> int:
    """Clear the unsubscription of those who asked to be back; return how many there were."""
    return stakeholders.filter(unsubscribed_at__isnull=False).update(unsubscribed_at=None)
