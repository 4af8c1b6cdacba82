"""Puts the Celery task id and name into the logging context for the task's duration."""

from __future__ import annotations

from typing import Any

from celery import signals

from apps.core import context


def _prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    context.task_id.set(task_id)
    context.task_name.set(getattr(task, "name", None))


def _postrun(**_: Any) -> None:
    context.task_id.set(None)
    context.task_name.set(None)


def connect() -> None:
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="core.task_context.prerun")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="core.task_context.postrun")
