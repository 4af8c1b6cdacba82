"""The admin's bulk CSV import of consent: the whole file is checked before anything is written, then
applied in chunks inside one transaction, so a file is imported entirely or not at all.

The file is read twice (a check pass, then an apply pass) rather than held as a million update objects;
the decoded text of a file under the size cap is small next to those.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from apps.clients.models import Channel
from apps.subscriptions.models import ConsentSource, ConsentStatus
from apps.subscriptions.services import CUSTOMER_ID_MAX_LENGTH, ConsentUpdate, subscriptions_set

HEADER = ("customer_id", "status")
# What people export from spreadsheets and CRMs, beside our own names (compared case-insensitively).
STATUS_ALIASES: dict[str, str] = {
    "opted_in": ConsentStatus.OPTED_IN,
    "in": ConsentStatus.OPTED_IN,
    "true": ConsentStatus.OPTED_IN,
    "1": ConsentStatus.OPTED_IN,
    "opted_out": ConsentStatus.OPTED_OUT,
    "out": ConsentStatus.OPTED_OUT,
    "false": ConsentStatus.OPTED_OUT,
    "0": ConsentStatus.OPTED_OUT,
    "unknown": ConsentStatus.UNKNOWN,
}
MAX_REPORTED_PROBLEMS = 10
CHUNK_SIZE = 10_000


class CsvImportInvalid(Exception):
    """The file cannot be imported; `problems` are the first few, each naming its line."""

    def __init__(self, problems: list[str], *, bad_lines: int = 0) -> None:
        self.problems = problems
        self.bad_lines = bad_lines
        if bad_lines > len(problems):
            summary = f"{bad_lines} bad lines, the first {len(problems)}: "
        elif bad_lines > 1:
            summary = f"{bad_lines} bad lines: "
        else:
            summary = ""
        super().__init__(f"{summary}{'; '.join(problems)}. Nothing was imported.")


def size_label(size: int) -> str:
    """20971520 -> "20 MB", 1153434 -> "1.1 MB", 10 -> "10 bytes"."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class CsvImportResult:
    rows: int
    changed: int


@dataclass(frozen=True)
class _Row:
    line: int
    customer_id: str = ""
    status: str = ""
    problem: str = ""


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a BOM (as Excel writes) is dropped
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvImportInvalid([f"line {line}: not UTF-8 text (save the file as CSV UTF-8)"]) from exc


def _rows(text: str) -> Iterator[_Row]:
    """Each data row with its line number (a quoted value may span lines), or the problem with it."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise CsvImportInvalid(["the file is empty; the first line must be customer_id,status"])
        names = tuple(cell.strip().lower() for cell in header)
        if sorted(names) != sorted(HEADER):
            found = ",".join(cell.strip() for cell in header)[:80]
            raise CsvImportInvalid(
                [f"line {reader.line_num}: the header must be customer_id,status, not {found!r}"]
            )
        id_index, status_index = names.index("customer_id"), names.index("status")
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            yield _row(reader.line_num, cells, id_index, status_index)
    except csv.Error as exc:
        raise CsvImportInvalid([f"line {reader.line_num}: {exc}"]) from exc


def _row(line: int, cells: list[str], id_index: int, status_index: int) -> _Row:
    if len(cells) != len(HEADER):
        return _Row(line, problem=f"line {line}: expected 2 values (customer_id,status), found {len(cells)}")
    customer_id, raw_status = cells[id_index].strip(), cells[status_index].strip()
    if not customer_id:
        return _Row(line, problem=f"line {line}: the customer id is empty")
    if len(customer_id) > CUSTOMER_ID_MAX_LENGTH:
        return _Row(
            line, problem=f"line {line}: the customer id is longer than {CUSTOMER_ID_MAX_LENGTH} characters"
        )
    if not customer_id.isprintable():
        return _Row(line, problem=f"line {line}: the customer id holds control characters")
    status = STATUS_ALIASES.get(raw_status.lower())
    if status is None:
        shown = raw_status if len(raw_status) <= 40 else f"{raw_status[:40]}…"
        allowed = ", ".join(STATUS_ALIASES)
        return _Row(line, problem=f"line {line}: status {shown!r} is not one of {allowed}")
    return _Row(line, customer_id=customer_id, status=status)


def subscriptions_csv_check(*, data: bytes) -> int:
    """Checks a whole consent CSV and returns its number of rows; raises CsvImportInvalid naming the
    first few bad lines (and how many there are)."""
    limit = settings.SUBSCRIPTIONS_CSV_MAX_BYTES
    if len(data) > limit:
        raise CsvImportInvalid([f"the file is larger than {size_label(limit)}; split it"])
    problems: list[str] = []
    bad_lines = rows = 0
    for row in _rows(_decode(data)):
        if row.problem:
            bad_lines += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(row.problem)
        else:
            rows += 1
    if bad_lines:
        raise CsvImportInvalid(problems, bad_lines=bad_lines)
    if not rows:
        raise CsvImportInvalid(["the file has a header but no rows"])
    return rows


def subscriptions_csv_import(
    *, channel: Channel, data: bytes, file_name: str, chunk_size: int = CHUNK_SIZE
) -> CsvImportResult:
    """Sets the state of every customer the CSV lists on `channel` (source csv_import, the file name as
    evidence) and returns how many rows there were and how many customers changed. A bad file raises
    CsvImportInvalid and changes nothing; so does a failure half-way, which rolls the whole file back.
    A customer listed twice ends in the state of their last line."""
    rows = subscriptions_csv_check(data=data)
    changed = 0
    chunk: list[ConsentUpdate] = []
    with transaction.atomic():
        for row in _rows(_decode(data)):
            chunk.append(ConsentUpdate(customer_id=row.customer_id, status=row.status))
            if len(chunk) >= chunk_size:
                changed += subscriptions_set(
                    channel=channel, updates=chunk, source=ConsentSource.CSV_IMPORT, detail=file_name
                )
                chunk = []
        if chunk:
            changed += subscriptions_set(
                channel=channel, updates=chunk, source=ConsentSource.CSV_IMPORT, detail=file_name
            )
    return CsvImportResult(rows=rows, changed=changed)
