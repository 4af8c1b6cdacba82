from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sandbox.models import SandboxAccount
from apps.sandbox.services import FIRE_EVENT_TYPES, SandboxFireError, sandbox_fire


class Command(BaseCommand):
    help = (
        "Plays Optimove: POSTs an event notification to every listener registered with the sandbox for "
        "the account, event type and (for 1, 11, 13) channel, and prints each outcome."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="Sandbox account name, e.g. local.")
        parser.add_argument("--event-type", type=int, required=True, choices=FIRE_EVENT_TYPES)
        parser.add_argument("--campaign-id", type=int, required=True)
        parser.add_argument("--channel-id", type=int, help="Required for 11 and 13.")
        parser.add_argument("--clearance-in", type=int, help="Type 5: seconds until ClearanceRequiredBy.")
        parser.add_argument("--customer-id", help="Type 11 (default: the campaign's first customer).")
        parser.add_argument("--template-id", type=int, help="Type 11 (default: that customer's template).")
        parser.add_argument("--personalization", help='Type 11: a JSON object, e.g. {"FirstName": "Ada"}.')
        parser.add_argument("--promo-code", default="", help="Type 11.")

    def handle(self, *args: Any, **options: Any) -> None:
        account = SandboxAccount.objects.filter(name=options["account"]).first()
        if account is None:
            raise CommandError(f"No sandbox account named {options['account']!r}")
        personalization = None
        if options["personalization"] is not None:
            try:
                personalization = json.loads(options["personalization"])
            except json.JSONDecodeError:
                raise CommandError("--personalization must be a JSON object") from None
            if not isinstance(personalization, dict):
                raise CommandError("--personalization must be a JSON object")
        try:
            notifications = sandbox_fire(
                account=account,
                event_type_id=options["event_type"],
                campaign_id=options["campaign_id"],
                channel_id=options["channel_id"],
                clearance_in_seconds=options["clearance_in"],
                customer_id=options["customer_id"],
                template_id=options["template_id"],
                promo_code=options["promo_code"],
                personalization=personalization,
            )
        except SandboxFireError as exc:
            raise CommandError(str(exc)) from None
        for notification in notifications:
            line = (
                f"event {notification.event_type_id} → {notification.display_url}: "
                f"{notification.outcome} in {notification.duration_ms} ms"
            )
            self.stdout.write(self.style.SUCCESS(line) if notification.ok else self.style.WARNING(line))
        if not any(n.ok for n in notifications):
            raise CommandError("No listener accepted the notification")
