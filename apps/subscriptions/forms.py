"""Admin forms for consent. None of them saves: the admin hands their values to `subscriptions_set`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet

from apps.clients.models import Channel
from apps.subscriptions.csv_import import STATUS_ALIASES, size_label
from apps.subscriptions.models import Subscription
from apps.subscriptions.services import CUSTOMER_ID_MAX_LENGTH


class SubscriptionAddForm(forms.ModelForm):
    """Channel, customer and state. A customer already recorded on the channel is not an error: their
    state is set like any other change, with its history row."""

    # Declared rather than a model field of the form, so the model's (channel, customer) uniqueness is
    # not checked here: `subscriptions_set` updates an existing row instead of failing on it.
    customer_id = forms.CharField(
        label="Customer id", max_length=CUSTOMER_ID_MAX_LENGTH, help_text="Exactly as Optimove knows it."
    )

    class Meta:
        model = Subscription
        fields = ["channel", "status"]

    def clean_customer_id(self) -> str:
        customer_id: str = self.cleaned_data["customer_id"]  # the form field strips spaces around it
        if not customer_id.isprintable():
            raise forms.ValidationError("A customer id cannot hold control characters.")
        return customer_id


class SubscriptionStatusForm(forms.ModelForm):
    """An existing subscription: only its state can change (the rest is who and where, and history)."""

    class Meta:
        model = Subscription
        fields = ["status"]


class SubscriptionCsvImportForm(forms.Form):
    channel = forms.ModelChoiceField(
        queryset=Channel.objects.none(), help_text="The channel the file is for."
    )
    file = forms.FileField(label="CSV file")

    def __init__(self, *args: Any, channels: QuerySet[Channel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Also what validates a POST: a channel of a client the user does not administer is refused.
        channel_field = self.fields["channel"]
        assert isinstance(channel_field, forms.ModelChoiceField)
        channel_field.queryset = channels
        self.fields[
            "file"
        ].help_text = (
            f"UTF-8 (with or without a BOM), at most {size_label(settings.SUBSCRIPTIONS_CSV_MAX_BYTES)}."
        )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.SUBSCRIPTIONS_CSV_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {size_label(upload.size)}; at most {size_label(limit)} is accepted. Split it."
            )
        return upload

    @staticmethod
    def accepted_statuses() -> dict[str, list[str]]:
        """Each state with the spellings the import accepts for it, for the page's instructions."""
        spellings: dict[str, list[str]] = {}
        for spelling, status in STATUS_ALIASES.items():
            spellings.setdefault(status, []).append(spelling)
        return spellings
