"""The retention purge's marker on provider events and its index, built CONCURRENTLY (outside a
transaction) so a large events table keeps taking callbacks meanwhile."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("delivery", "0002_reporting"),
    ]

    operations = [
        migrations.AddField(
            model_name="deliveryevent",
            name="personal_data_purged_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        AddIndexConcurrently(
            model_name="deliveryevent",
            index=models.Index(
                condition=models.Q(("personal_data_purged_at__isnull", True)),
                fields=["client", "received_at", "id"],
                name="delivery_event_personal_data",
            ),
        ),
    ]
