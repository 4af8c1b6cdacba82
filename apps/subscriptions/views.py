"""The unsubscribe link's page and the one-click URL of the List-Unsubscribe header.

Both are public: the sealed token in the URL is the credential, so no login and no CSRF token (a
forged request would need a token only the customer's email holds). A GET never unsubscribes: mail
scanners and link previews fetch every link in a message, so the page asks for a button press, whose
POST does it. Mail clients that support RFC 8058 POST `List-Unsubscribe=One-Click` to the one-click
URL without showing anything; those that do not open it in a browser, which shows the same page.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.subscriptions.models import ConsentSource, ConsentStatus
from apps.subscriptions.selectors import subscription_status
from apps.subscriptions.unsubscribe import (
    ONE_CLICK_BODY,
    UnsubscribeTarget,
    unsubscribe_target_opt_out,
    unsubscribe_target_read,
)


def _invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "subscriptions/unsubscribe_invalid.html", status=404)


def _page(request: HttpRequest, target: UnsubscribeTarget, token: str, *, state: str) -> HttpResponse:
    """state: "confirm" (the button, posting to the link's own URL), "done" or "already"."""
    channel = target.channel
    action = reverse(
        "subscriptions-unsubscribe",
        kwargs={
            "client_slug": channel.client.slug,
            "channel_id": channel.optimove_channel_id,
            "token": token,
        },
    )
    return render(
        request,
        "subscriptions/unsubscribe.html",
        {"state": state, "client_name": channel.client.name, "channel_name": channel.name, "action": action},
    )


def _confirm_or_already(request: HttpRequest, target: UnsubscribeTarget, token: str) -> HttpResponse:
    status = subscription_status(channel_id=target.channel.pk, customer_id=target.customer_id)
    return _page(request, target, token, state="already" if status == ConsentStatus.OPTED_OUT else "confirm")


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe_page(request: HttpRequest, client_slug: str, channel_id: int, token: str) -> HttpResponse:
    target = unsubscribe_target_read(client_slug=client_slug, channel_id=channel_id, token=token)
    if target is None:
        return _invalid(request)
    if request.method != "POST":
        return _confirm_or_already(request, target, token)
    changed = unsubscribe_target_opt_out(target=target, source=ConsentSource.UNSUBSCRIBE_LINK)
    return _page(request, target, token, state="done" if changed else "already")


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe_one_click(
    request: HttpRequest, client_slug: str, channel_id: int, token: str
) -> HttpResponse:
    target = unsubscribe_target_read(client_slug=client_slug, channel_id=channel_id, token=token)
    if target is None:
        return _invalid(request)
    if request.method != "POST":
        return _confirm_or_already(request, target, token)
    field, value = ONE_CLICK_BODY
    if request.POST.get(field) != value:
        return HttpResponse(
            f"A one-click unsubscribe is a POST with the body {field}={value}.\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    changed = unsubscribe_target_opt_out(target=target, source=ConsentSource.ONE_CLICK)
    text = "You are unsubscribed.\n" if changed else "You are already unsubscribed.\n"
    return HttpResponse(text, content_type="text/plain; charset=utf-8")
