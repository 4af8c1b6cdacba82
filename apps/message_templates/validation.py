"""What a template must contain for its channel's kind, and that every part compiles.

Used by `MessageTemplate.clean()`, hence by the admin's form and by `template_upsert` (which runs
`full_clean`), so a template that cannot be sent never reaches a campaign.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.conf import settings

from apps.clients.models import ChannelKind
from apps.core.jsonsafe import text_unstorable
from apps.message_templates.rendering import template_source_error

if TYPE_CHECKING:
    from apps.message_templates.models import MessageTemplate

_REQUIRED_BY_KIND: dict[str, tuple[str, str]] = {
    # kind: (the field the message is shown on, the message)
    ChannelKind.EMAIL: ("html_body", "An email template needs an HTML body or a text body."),
    ChannelKind.SMS: ("text_body", "An SMS template needs a text."),
    ChannelKind.PUSH: ("text_body", "A push template needs a title (subject) or a body (text)."),
    ChannelKind.WEBHOOK: ("payload", "A webhook template needs a JSON payload or a text."),
    ChannelKind.CONSOLE: ("text_body", "A console template needs at least one part."),
}


def _sentence(reason: str) -> str:
    reason = reason[:1].upper() + reason[1:]
    return reason if reason.endswith(".") else reason + "."


def _filled(value: str) -> bool:
    return bool(value and value.strip())


def _has_required_content(template: MessageTemplate, kind: str) -> bool:
    if kind == ChannelKind.EMAIL:
        return _filled(template.html_body) or _filled(template.text_body)
    if kind == ChannelKind.SMS:
        return _filled(template.text_body)
    if kind == ChannelKind.PUSH:
        return _filled(template.subject) or _filled(template.text_body)
    if kind == ChannelKind.WEBHOOK:
        return template.payload is not None or _filled(template.text_body)
    return any(
        (
            _filled(template.subject),
            _filled(template.html_body),
            _filled(template.text_body),
            _filled(template.deep_link),
            template.payload is not None,
        )
    )


def _payload_errors(payload: Any, kind: str) -> list[str]:
    if payload is None:
        return []
    if kind == ChannelKind.PUSH:
        if not isinstance(payload, dict):
            return ["Push data must be a JSON object of names to text values."]
        not_text = [str(key) for key, value in payload.items() if not isinstance(value, str)]
        if not_text:
            return [
                "Push data values must be text (FCM sends data as strings); not text: "
                + ", ".join(sorted(not_text))
                + "."
            ]
    errors: list[str] = []
    for path, leaf in _leaves(payload, "$"):
        reason = text_unstorable(leaf) or template_source_error(leaf)
        if reason:
            errors.append(f"Payload at {path}: {reason}")
    return errors


def _leaves(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, f"{path}[{index}]")]
    return []


def sample_attributes_errors(sample: Any) -> list[str]:
    """The preview's sample must look like what Optimove sends: names to text values."""
    if not isinstance(sample, dict):
        return ['Sample attributes must be a JSON object, such as {"FirstName": "Ada"}.']
    not_text = sorted(str(key) for key, value in sample.items() if not isinstance(value, str))
    if not_text:
        return [
            'Sample attribute values must be text, as Optimove sends them (write "42", not 42); '
            "not text: " + ", ".join(not_text) + "."
        ]
    return []


def template_content_errors(*, template: MessageTemplate) -> dict[str, list[str]]:
    """Field name -> readable problems; empty when the template suits its channel and compiles."""
    kind = template.channel.kind
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if kind == ChannelKind.EMAIL and not _filled(template.subject):
        add("subject", "An email template needs a subject.")
    if not _has_required_content(template, kind):
        field, message = _REQUIRED_BY_KIND[kind]
        add(field, message)

    max_bytes = int(settings.TEMPLATE_MAX_OUTPUT_BYTES)
    for field, source, html in (
        ("subject", template.subject, False),
        ("html_body", template.html_body, True),
        ("text_body", template.text_body, False),
        ("deep_link", template.deep_link, False),
    ):
        if problem := text_unstorable(source):
            add(field, _sentence(problem))
            continue
        if len(source.encode("utf-8")) > max_bytes:
            add(field, f"Longer than the {max_bytes}-byte limit of a rendered part.")
            continue
        reason = template_source_error(source, html=html)
        if reason:
            add(field, _sentence(reason))

    if template.payload is not None and len(json.dumps(template.payload).encode("utf-8")) > max_bytes:
        add("payload", f"Longer than the {max_bytes}-byte limit of a rendered part.")
    else:
        for message in _payload_errors(template.payload, kind):
            add("payload", message)
    for message in sample_attributes_errors(template.sample_attributes):
        add("sample_attributes", message)
    return errors
