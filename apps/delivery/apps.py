from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "apps.delivery"
    label = "delivery"
    verbose_name = "Delivery and reporting"

    def ready(self) -> None:
        # django-anymail hands tracking events over through its signal; this is the one receiver.
        from anymail.signals import tracking

        from apps.delivery.providers import anymail_tracking_received

        tracking.connect(anymail_tracking_received, dispatch_uid="apps.delivery.anymail_tracking")
