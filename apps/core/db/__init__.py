"""The PostgreSQL backend the platform runs on: Django's, with a health check that costs no round trip
(`base.DatabaseWrapper`). Set as every database's ENGINE in config.settings."""
