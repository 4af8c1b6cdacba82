"""Admin forms whose secret inputs are write-only: a stored secret is never rendered back, not even
as the value typed into a form shown again with errors. An empty input keeps the stored value."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from apps.clients.models import Channel, Client


class WriteOnlyPasswordInput(forms.PasswordInput):
    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False)


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that renders empty whatever its value, stored or submitted."""

    def format_value(self, value: Any) -> str | None:
        return None


KEEP_HELP = "Write-only: leave empty to keep the stored value."


class ClientAdminForm(forms.ModelForm):
    optimove_base_url = forms.URLField(
        label=Client._meta.get_field("optimove_base_url").verbose_name,
        max_length=300,
        assume_scheme="https",
        help_text=Client._meta.get_field("optimove_base_url").help_text,
    )
    new_optimove_api_key = forms.CharField(
        label="New Optimove API key",
        required=False,
        strip=True,
        widget=WriteOnlyPasswordInput(),
        help_text=KEEP_HELP,
    )
    clear_optimove_api_key = forms.BooleanField(label="Remove the stored API key", required=False)
    new_optimove_password = forms.CharField(
        label="New Optimove password (legacy login)",
        required=False,
        strip=False,
        widget=WriteOnlyPasswordInput(),
        help_text=KEEP_HELP,
    )
    clear_optimove_password = forms.BooleanField(label="Remove the stored password", required=False)

    # (model field, new value input, clear checkbox)
    SECRETS = (
        ("optimove_api_key", "new_optimove_api_key", "clear_optimove_api_key"),
        ("optimove_password", "new_optimove_password", "clear_optimove_password"),
    )

    class Meta:
        model = Client
        fields = (
            "slug",
            "name",
            "is_active",
            "personal_data_retention_days",
            "optimove_base_url",
            "optimove_username",
            "admins",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for _attr, new, clear in self.SECRETS:
            if cleaned.get(new) and cleaned.get(clear):
                self.add_error(clear, "Either type a new value or remove the stored one, not both.")
        return cleaned

    def save(self, commit: bool = True) -> Client:
        for attr, new, clear in self.SECRETS:
            if self.cleaned_data.get(clear):
                setattr(self.instance, attr, "")
            elif self.cleaned_data.get(new):
                setattr(self.instance, attr, self.cleaned_data[new])
        return super().save(commit)


class ChannelAdminForm(forms.ModelForm):
    provider_secrets_update = forms.CharField(
        label="Set provider secrets",
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text=(
            'Write-only JSON object, e.g. {"password": "..."}: the keys listed are set or replaced, a key '
            "set to null is removed, keys not listed keep their stored values."
        ),
    )
    clear_provider_secrets = forms.BooleanField(
        label="Remove all stored provider secrets (before applying the ones above)", required=False
    )

    class Meta:
        model = Channel
        fields = (
            "client",
            "optimove_channel_id",
            "name",
            "kind",
            "provider",
            "provider_options",
            "address_attribute",
            "rate_limit_per_second",
            "is_realtime",
            "scheduled_event_type",
            "consent_sync",
            "consent_attribute",
            "is_active",
        )

    def clean_provider_secrets_update(self) -> dict[str, str | None]:
        text = (self.cleaned_data.get("provider_secrets_update") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            # Where, never what: the text holds secrets.
            raise ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}); nothing was changed."
            ) from None
        if not isinstance(value, dict):
            raise ValidationError('Expected a JSON object such as {"password": "..."}.')
        for key, secret in value.items():
            if not key:
                raise ValidationError("A secret's name must not be empty.")
            if secret is not None and (not isinstance(secret, str) or not secret):
                raise ValidationError(f"{key!r}: expected a non-empty string, or null to remove it.")
        return value

    def save(self, commit: bool = True) -> Channel:
        update: dict[str, str | None] = self.cleaned_data.get("provider_secrets_update") or {}
        if update or self.cleaned_data.get("clear_provider_secrets"):
            secrets = (
                {}
                if self.cleaned_data.get("clear_provider_secrets")
                else dict(self.instance.provider_secrets or {})
            )
            for key, secret in update.items():
                if secret is None:
                    secrets.pop(key, None)
                else:
                    secrets[key] = secret
            self.instance.provider_secrets = secrets
        return super().save(commit)
