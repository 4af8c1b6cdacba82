"""The retention purge's marker on messages and the indexes it finds its work with.

Adding a nullable column without a default changes only the catalogue; the indexes are built
CONCURRENTLY (so outside a transaction), so a large messages table keeps taking writes meanwhile."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("campaigns", "0002_message_delivery"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="personal_data_purged_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(
                condition=models.Q(
                    ("personal_data_purged_at__isnull", True),
                    ("status__in", ["sent", "failed", "skipped", "cancelled"]),
                ),
                fields=["run", "send_at", "id"],
                name="message_personal_data",
            ),
        ),
        AddIndexConcurrently(
            model_name="cancelledcustomer",
            index=models.Index(
                condition=models.Q(("promo_code", ""), _negated=True),
                fields=["cancellation", "id"],
                name="cancelled_customer_promo",
            ),
        ),
    ]
