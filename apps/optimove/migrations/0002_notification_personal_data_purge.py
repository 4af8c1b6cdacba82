"""The retention purge's marker on notifications and its index (real-time triggers only), built
CONCURRENTLY (outside a transaction) so the listener keeps recording meanwhile."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("optimove", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="personal_data_purged_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        AddIndexConcurrently(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("event_type_id", 11), ("personal_data_purged_at__isnull", True)),
                fields=["client", "created_at", "id"],
                name="notification_personal_data",
            ),
        ),
    ]
