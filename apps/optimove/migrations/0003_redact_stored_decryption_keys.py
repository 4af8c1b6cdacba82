"""Notifications stored before the listener redacted secrets (apps.optimove.notifications.SECRET_FIELDS)
kept EventTypeID 14's DecryptionKey in clear: redact them in place."""

from typing import Any

from django.db import migrations

SECRET_FIELDS = frozenset({"decryptionkey"})  # as in apps.optimove.notifications, frozen at this point
REDACTED = "[redacted]"


def redact(apps: Any, schema_editor: Any) -> None:
    Notification = apps.get_model("optimove", "Notification")
    for notification in Notification.objects.filter(event_type_id=14).only("id", "body").iterator():
        body = notification.body
        if isinstance(body, dict) and any(str(key).lower() in SECRET_FIELDS for key in body):
            notification.body = {
                key: REDACTED if str(key).lower() in SECRET_FIELDS else value for key, value in body.items()
            }
            notification.save(update_fields=["body"])


class Migration(migrations.Migration):
    dependencies = [("optimove", "0002_notification_personal_data_purge")]

    operations = [migrations.RunPython(redact, migrations.RunPython.noop)]
