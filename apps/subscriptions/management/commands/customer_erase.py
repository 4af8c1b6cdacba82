"""`manage.py customer_erase SLUG CUSTOMER_ID`: erase one customer's personal data for one client."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients.commands import command_client
from apps.subscriptions.erasure import ErasureResult, customer_erase

logger = logging.getLogger(__name__)


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def describe(result: ErasureResult) -> list[str]:
    """What was removed, as counts per kind: never an address, a name or any other value."""
    lines: list[str] = []
    if result.messages:
        cancelled = (
            f" ({result.messages_cancelled} unsent, now cancelled)" if result.messages_cancelled else ""
        )
        lines.append(
            "messages: attributes, errors and history cleared on "
            f"{_plural(result.messages, 'message')}{cancelled}"
        )
    if result.delivery_events:
        lines.append(
            f"provider events: payload and link cleared on {_plural(result.delivery_events, 'event')}"
        )
    if result.notifications:
        lines.append(
            "Optimove notifications: cut down to their ids on "
            f"{_plural(result.notifications, 'notification')}"
        )
    if result.promo_codes:
        lines.append(f"cancelled campaigns: {_plural(result.promo_codes, 'promo code')} removed")
    if result.subscriptions_deleted:
        lines.append(
            f"consent: {_plural(result.subscriptions_deleted, 'subscription')} (not opted out) deleted"
        )
    if result.consent_changes_deleted:
        lines.append(f"consent: {_plural(result.consent_changes_deleted, 'change row')} deleted")
    if result.consent_details_blanked:
        lines.append(f"consent: detail blanked on {_plural(result.consent_details_blanked, 'opt-out row')}")
    return lines


class Command(BaseCommand):
    help = (
        "Erases a customer's personal data for one client: attributes, errors and history of their "
        "messages on every run and channel, provider events carrying their addresses, their real-time "
        "trigger notifications, promo codes, and consent history beyond what proves an opt-out. Prints "
        "counts of what was removed, never the data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The client's slug.")
        parser.add_argument("customer_id", help="The customer's Optimove CustomerID.")

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["slug"]
        client = command_client(slug)
        try:
            result = customer_erase(client=client, customer_id=options["customer_id"])
        except ValueError as exc:
            raise CommandError(f"Cannot erase: {exc}.") from None
        logger.info(
            "customer personal data erased",
            extra={"client": slug, **{name: getattr(result, name) for name in result.__dataclass_fields__}},
        )
        kept = (
            f"Kept as proof: {_plural(result.opt_outs_kept, 'opt-out')} (status, source and time only)."
            if result.opt_outs_kept
            else ""
        )
        if not result.found:
            self.stdout.write(f"Nothing of this customer's personal data was found for client {slug}.")
        else:
            self.stdout.write(f"Erased this customer's personal data for client {slug}:")
            for line in describe(result):
                self.stdout.write(f"  - {line}")
        if kept:
            self.stdout.write(kept)
