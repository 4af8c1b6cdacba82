from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "apps.metrics"
    label = "metrics"
    verbose_name = "Metrics"

    def ready(self) -> None:
        from apps.metrics.multiproc import multiprocess_configure

        # Before any metric value is created in this process (django-prometheus's middleware creates
        # its own when the web handler loads, after every app is ready).
        multiprocess_configure()
