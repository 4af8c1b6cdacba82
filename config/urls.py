from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apps.core import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("", include("apps.metrics.urls")),  # /metrics for Prometheus (apps.metrics)
    path("admin/", admin.site.urls),
    path("optimove/", include("apps.optimove.urls")),
    path("", include("apps.subscriptions.urls_sync")),  # /optimove/attributes-callback/ (consent sync)
    path("api/v1/", include("apps.subscriptions.api_urls")),  # the client API (consent)
    path("", include("apps.delivery.urls")),  # /delivery/... provider callbacks, /t/... tracked links
    path("", include("apps.subscriptions.urls")),  # /t/u/... unsubscribe links
]

if settings.SANDBOX_ENABLED:
    # Mirrors Optimove's own paths, so a client's base URL is simply this server's address.
    urlpatterns.append(path("", include("apps.sandbox.urls")))
