# The dispatcher's claim orders a run's due pending rows by (due_at, id): with the id in the index, a
# claim no longer reads and sorts every pending row of a campaign due at once. Built and dropped
# CONCURRENTLY, so a deploy does not block sends on a large message table.

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("campaigns", "0003_message_personal_data_purge"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["run", "due_at", "id"],
                name="message_pending_due_id",
            ),
        ),
        RemoveIndexConcurrently(
            model_name="message",
            name="message_due_pending",
        ),
    ]
