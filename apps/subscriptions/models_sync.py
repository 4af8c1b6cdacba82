"""What the consent sync to Optimove keeps beside the Subscription rows (which are its outbox): the
customer attributes created in Optimove, each call made, and the customers Optimove rejected.

Imported at the end of `apps.subscriptions.models`, so Django registers these with the app.
"""

from __future__ import annotations

from django.db import models


class ConsentAttribute(models.Model):
    """A customer attribute that exists in the client's Optimove (created once with
    AddCustomerAttribute, or found to exist already)."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="consent_attributes")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField()
    note = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["client", "name"]
        constraints = [
            models.UniqueConstraint(fields=["client", "name"], name="consent_attribute_unique_per_client")
        ]

    def __str__(self) -> str:
        return self.name


class ConsentSyncCallState(models.TextChoices):
    SENDING = "sending", "Sending (or interrupted)"
    ACCEPTED = "accepted", "Accepted"
    REFUSED = "refused", "Refused"  # a terminal error: the rows carry it as sync_error
    FAILED = "failed", "Failed, will be retried"  # an error that can heal: the rows stay pending


class ConsentSyncCall(models.Model):
    """One SetCustomerChannelPreference or UpdateCustomerAttributes call. The row exists before the
    call is made, so an UpdateCustomerAttributes callback (whose URL names this row) can be matched
    to it even when it arrives before the call's answer has been recorded."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(
        "clients.Channel", on_delete=models.CASCADE, related_name="consent_sync_calls"
    )
    method = models.CharField(max_length=16)  # Channel.consent_sync: preference | attribute
    communication_mode = models.IntegerField(null=True, blank=True)
    customers = models.PositiveIntegerField()
    # customer id -> the Subscription.sync_version sent (attribute calls): a rejection in the callback
    # re-opens exactly that version, never a later one.
    versions = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=ConsentSyncCallState.choices, default=ConsentSyncCallState.SENDING
    )
    error = models.CharField(max_length=500, blank=True, default="")
    sent_at = models.DateTimeField(db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    callback_received_at = models.DateTimeField(null=True, blank=True)
    callback_success = models.BooleanField(null=True, blank=True)
    callback_request_id = models.CharField(max_length=100, blank=True, default="")
    callback_body = models.JSONField(null=True, blank=True)  # as received, cut to a bounded size
    callback_note = models.CharField(max_length=500, blank=True, default="")
    rejected = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-sent_at", "-id"]
        indexes = [models.Index(fields=["channel", "-sent_at"], name="consent_sync_call_channel")]

    def __str__(self) -> str:
        return f"{self.method} call of {self.customers} on channel {self.channel_id} ({self.state})"


class ConsentSyncRejection(models.Model):
    """A customer Optimove rejected in an UpdateCustomerAttributes callback (or an error the callback
    reported without naming a customer, with an empty customer_id)."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey("clients.Channel", on_delete=models.CASCADE, related_name="+")
    subscription = models.ForeignKey(
        "subscriptions.Subscription",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sync_rejections",
    )
    call = models.ForeignKey(
        ConsentSyncCall, on_delete=models.SET_NULL, null=True, blank=True, related_name="rejections"
    )
    customer_id = models.CharField(max_length=128, blank=True, default="")
    reason = models.CharField(max_length=500)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.customer_id or '(no customer)'}: {self.reason}"
