from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.sandbox.models import SandboxAccount, SandboxCampaign
from apps.sandbox.services import SandboxInputError, sandbox_campaign_upsert


def _int_list(text: str, *, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"{option} takes whole numbers separated by commas, got {text!r}") from None


def _attributes(text: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, kind = part.partition(":")
        if not sep or not name or not kind:
            raise CommandError(f"--attributes takes Name:kind pairs separated by commas, got {part!r}")
        attributes[name] = kind
    return attributes


def _base_time(text: str) -> datetime:
    if text == "now":
        return timezone.now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--base-time takes 'now' or an ISO date-time with its offset, got {text!r}"
        ) from None
    if timezone.is_naive(moment):
        raise CommandError("--base-time needs a UTC offset, e.g. 2026-03-02T09:00:00+00:00")
    return moment


def describe(campaign: SandboxCampaign) -> str:
    attributes = ", ".join(f"{name}:{kind}" for name, kind in campaign.attributes.items()) or "none"
    return (
        f"account {campaign.account.name!r} campaign {campaign.campaign_id} channel {campaign.channel_id}: "
        f"{campaign.size} customers, seed {campaign.seed}, templates {campaign.template_ids}, "
        f"send offsets {campaign.send_offsets_seconds} s from {campaign.base_time.isoformat()}, "
        f"attributes {attributes}, cancelled {campaign.cancelled_count}"
    )


class Command(BaseCommand):
    help = (
        "Creates or updates a sandbox campaign whose customers are generated from a seed "
        "(idempotent by account, campaign and channel) and prints it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="Sandbox account name, e.g. local.")
        parser.add_argument("--campaign-id", type=int, required=True)
        parser.add_argument("--channel-id", type=int, required=True)
        parser.add_argument("--size", type=int, help="Number of customers (required to create).")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--templates", help="TemplateIDs, e.g. 14,15.")
        parser.add_argument("--send-offsets", help="Seconds after the base time, e.g. 0,5,15.")
        parser.add_argument("--attributes", help="Name:kind pairs, e.g. Email:email,FirstName:first_name.")
        parser.add_argument(
            "--cancelled", type=int, help="How many customers GetCanceledCampaignCustomers lists."
        )
        parser.add_argument(
            "--base-time", help="'now' or an ISO date-time with offset; default now on creation."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = SandboxAccount.objects.filter(name=options["account"]).first()
        if account is None:
            known = ", ".join(SandboxAccount.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No sandbox account named {options['account']!r} (known: {known})")
        try:
            campaign, created = sandbox_campaign_upsert(
                account=account,
                campaign_id=options["campaign_id"],
                channel_id=options["channel_id"],
                size=options["size"],
                seed=options["seed"],
                template_ids=_int_list(options["templates"], option="--templates")
                if options["templates"]
                else None,
                send_offsets_seconds=(
                    _int_list(options["send_offsets"], option="--send-offsets")
                    if options["send_offsets"]
                    else None
                ),
                attributes=_attributes(options["attributes"]) if options["attributes"] is not None else None,
                base_time=_base_time(options["base_time"]) if options["base_time"] else None,
                cancelled_count=options["cancelled"],
            )
        except SandboxInputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"{'Created' if created else 'Updated'} {describe(campaign)}"))
