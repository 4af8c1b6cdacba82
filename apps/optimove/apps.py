from django.apps import AppConfig


class OptimoveConfig(AppConfig):
    name = "apps.optimove"
    label = "optimove"
    verbose_name = "Optimove"
