import os

from apps.core.wsgi import application_get

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
application = application_get()
