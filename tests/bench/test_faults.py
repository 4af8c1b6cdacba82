"""The fault suite (bench/faults.py).

The slow test runs the whole scenario at a small size: a 3,000-customer campaign to the signed webhook
channel while the sends worker and the control worker are killed with SIGKILL, a pool child too, Redis
is restarted without persistence, the platform's PostgreSQL connections are cut, the sandbox fails 20 %
of Optimove calls and the receiver 10 % of webhooks. The platform keeps MESSAGE_MAX_ATTEMPTS (6); only
its waits are shortened (retry backoff, the sweeper's timeouts) so the run takes about two minutes of
real time instead of more than ten. It starts its own PostgreSQL, Redis and processes, so it is marked
`slow` and left out of the default run: `pytest -m slow tests/bench` runs it.

The fast tests check the suite's own verdict: each check fails when what it guards is broken.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench.common import Answered, FlakyReceiver, Stack
from bench.faults import (
    CUT_POSTGRES,
    DEFAULT_PLAN,
    KILL_POOL_CHILD,
    KILL_WORKER,
    RESTART_REDIS,
    Check,
    DeliveryFigures,
    Fault,
    analyse_deliveries,
    evaluate_checks,
    parse_args,
    retry_policy_description,
)

ROOT = Path(__file__).resolve().parent.parent.parent


def answered(customer: str, key: str, *statuses: int, start: float = 0.0) -> list[Answered]:
    return [Answered(start + i, key, customer, status) for i, status in enumerate(statuses)]


# The suite's verdict
# ------------------------------------------------------------------------------


def test_repeats_are_told_apart_by_the_answer_that_came_before() -> None:
    figures = analyse_deliveries(
        expected=["c-0", "c-1", "c-2"],
        answered=[
            *answered("c-0", "k0", 200),
            *answered("c-1", "k1", 503, 500, 200),  # two retries after 5xx answers
            *reversed(answered("c-2", "k2", 200, 200, 502, 200)),  # arrival order is restored by time
        ],
        stored_keys={"c-0": "k0", "c-1": "k1", "c-2": "k2"},
    )
    assert figures == DeliveryFigures(
        customers=3,
        delivered=3,
        requests=8,
        answered_ok=5,
        answered_fault=3,
        repeats=5,
        repeats_after_fault=3,
        repeats_after_ok=2,
        customers_repeated_after_ok=1,
        undelivered=(),
        key_mismatches=(),
        unknown_customers=(),
    )


def test_a_customer_only_answered_with_errors_is_not_delivered() -> None:
    figures = analyse_deliveries(
        expected=["c-0", "c-1", "c-2"],
        answered=[*answered("c-0", "k0", 200), *answered("c-1", "k1", 500, 503), *answered("x-9", "k9", 200)],
        stored_keys={"c-0": "k0", "c-1": "k1"},
    )
    assert (figures.delivered, figures.undelivered, figures.unknown_customers) == (
        1,
        ("c-1", "c-2"),
        ("x-9",),
    )
    check = _check(figures, {"sent": 3}, "every customer delivered (a 2xx answer at least once)")
    assert not check.passed
    assert check.detail == (
        "1 of 3; never accepted: c-1, c-2; requests for customers not in the campaign: x-9"
    )


def test_a_repeat_with_another_key_or_a_key_other_than_the_stored_one_is_caught() -> None:
    figures = analyse_deliveries(
        expected=["c-0", "c-1", "c-2"],
        answered=[
            *answered("c-0", "k0", 500),
            *answered("c-0", "other", 200, start=5),
            *answered("c-1", "not-stored", 200),
            *answered("c-2", "k2", 200),
        ],
        stored_keys={"c-0": "k0", "c-1": "k1", "c-2": "k2"},
    )
    assert figures.key_mismatches == ("c-0", "c-1")
    check = _check(
        figures, {"sent": 3}, "every repeat carried the first delivery's Idempotency-Key (the stored one)"
    )
    assert (check.passed, check.detail) == (False, "2 customers with another key: c-0, c-1")


def test_every_check_passes_when_every_promise_was_kept() -> None:
    figures = analyse_deliveries(
        expected=["c-0", "c-1"],
        answered=[*answered("c-0", "k0", 200, 200), *answered("c-1", "k1", 503, 200)],
        stored_keys={"c-0": "k0", "c-1": "k1"},
    )
    checks = evaluate_checks(
        figures=figures,
        statuses={"sent": 2},
        run_state="completed",
        planned=DEFAULT_PLAN,
        injected=DEFAULT_PLAN,
        unexpected_exits=[],
    )
    assert [c.name for c in checks if not c.passed] == []
    assert len(checks) == 9


IN_FLIGHT_FAILS = {"none left pending, queued or sending", "every message ended sent", "the run completed"}


@pytest.mark.parametrize(
    ("statuses", "run_state", "injected", "exits", "failing"),
    [
        ({"sent": 1, "pending": 1}, "sending", DEFAULT_PLAN, [], IN_FLIGHT_FAILS),
        ({"sent": 1, "queued": 1}, "sending", DEFAULT_PLAN, [], IN_FLIGHT_FAILS),
        ({"sent": 1, "sending": 1}, "sending", DEFAULT_PLAN, [], IN_FLIGHT_FAILS),
        (
            {"sent": 1, "failed": 1},
            "completed",
            DEFAULT_PLAN,
            [],
            {"none failed", "every message ended sent"},
        ),
        ({"sent": 1, "skipped": 1}, "completed", DEFAULT_PLAN, [], {"every message ended sent"}),
        (
            {"sent": 1},
            "completed",
            DEFAULT_PLAN,
            [],
            {"one message stored per customer", "every message ended sent"},
        ),
        ({"sent": 2}, "completed", DEFAULT_PLAN[:4], [], {"every planned fault was injected"}),
        (
            {"sent": 2},
            "completed",
            DEFAULT_PLAN,
            ["beat exited by itself with status 1"],
            {"no platform process died by itself"},
        ),
    ],
)
def test_each_broken_promise_fails_its_check(
    statuses: dict[str, int], run_state: str, injected: tuple[Fault, ...], exits: list[str], failing: set[str]
) -> None:
    figures = analyse_deliveries(
        expected=["c-0", "c-1"],
        answered=[*answered("c-0", "k0", 200), *answered("c-1", "k1", 200)],
        stored_keys={"c-0": "k0", "c-1": "k1"},
    )
    checks = evaluate_checks(
        figures=figures,
        statuses=statuses,
        run_state=run_state,
        planned=DEFAULT_PLAN,
        injected=injected,
        unexpected_exits=exits,
    )
    assert {c.name for c in checks if not c.passed} == failing


def test_the_default_retry_policy_is_described_with_its_waits() -> None:
    assert retry_policy_description(max_attempts=6, base=30.0, cap=3600.0) == (
        "at most 6 attempts; waits between them: 15-30 s, 30-60 s, 60-120 s, 120-240 s, 240-480 s "
        "(base 30 s doubling, capped at 3600 s, jittered to half..whole)"
    )


def test_the_plan_kills_three_times_restarts_redis_and_cuts_postgres_once() -> None:
    kinds = [f.kind for f in DEFAULT_PLAN]
    assert sorted(kinds) == sorted([KILL_WORKER, KILL_WORKER, KILL_POOL_CHILD, RESTART_REDIS, CUT_POSTGRES])
    # Spread over the run: the first while paging may still be going on, the last well before the end.
    assert [f.at_fraction for f in DEFAULT_PLAN] == [0.10, 0.25, 0.40, 0.55, 0.70]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--setting", "lower=1"],
            "--setting must look like NAME=VALUE with an upper-case NAME, got 'lower=1'",
        ),
        (["--setting", "MESSAGE_MAX_ATTEMPTS"], "--setting must look like NAME=VALUE"),
        (
            ["--setting", "DATABASE_URL=postgres://elsewhere/db"],
            "--setting DATABASE_URL: the harness sets DATABASE_URL itself; it cannot be overridden",
        ),
        (["--customers", "0"], "--customers must be between 1 and 10,000,000"),
        (["--receiver-fault-rate", "1"], "--receiver-fault-rate must be at least 0 and below 1"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _check(figures: DeliveryFigures, statuses: dict[str, int], name: str) -> Check:
    checks = evaluate_checks(
        figures=figures,
        statuses=statuses,
        run_state="completed",
        planned=DEFAULT_PLAN,
        injected=DEFAULT_PLAN,
        unexpected_exits=[],
    )
    return next(c for c in checks if c.name == name)


# The receiver standing in for the provider
# ------------------------------------------------------------------------------


def _post(port: int, body: bytes, *, declared: int, key: str) -> bytes:
    """Sends a POST declaring `declared` body bytes but sending only `body`, then ends the connection
    (what a sender killed mid-request does); returns what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Idempotency-Key: {key}\r\nContent-Length: {declared}\r\n\r\n".encode()
            + body
        )
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(4096)


def test_a_request_cut_off_before_its_body_was_whole_is_no_delivery() -> None:
    """A sender killed mid-request leaves the receiver headers and part of a body. No provider would act
    on it, so the suite must not count it as a delivery (of customer "", with a key of its own)."""
    stack = SimpleNamespace(children=[])
    receiver = FlakyReceiver(cast(Stack, stack), "receiver", fault_rate=0.0)
    try:
        whole = json.dumps({"customer_id": "c-1"}).encode()
        assert _post(receiver.port, whole[:5], declared=len(whole), key="k-cut") == b""
        assert _post(receiver.port, whole, declared=len(whole), key="k-whole").startswith(b"HTTP/1.1 200")
        got: list[Any] = [(a.key, a.customer_id, a.status) for a in receiver.answered()]
        assert got == [("k-whole", "c-1", 200)]
        assert receiver.delivered() == 1
    finally:
        receiver.process.kill()
        receiver.process.join(5)


# The whole scenario (slow)
# ------------------------------------------------------------------------------

CUSTOMERS = 3000
# Shorter waits only; the number of attempts (6) and everything else stay the platform's defaults.
COMPRESSED_POLICY = {
    "MESSAGE_RETRY_BASE_SECONDS": "2",
    "MESSAGE_RETRY_MAX_SECONDS": "10",
    "MESSAGE_SENDING_TIMEOUT_SECONDS": "30",
    "MESSAGE_QUEUED_TIMEOUT_SECONDS": "30",
    "PAGING_STALL_SECONDS": "20",
    "SWEEP_INTERVAL_SECONDS": "3",
    # 31 audience calls rather than 2, so the sandbox's 20 % faults hit paging (all 31 escape them one
    # run in a thousand).
    "OPTIMOVE_PAGE_SIZE": "100",
}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_campaign_survives_kills_a_redis_restart_a_connection_cut_and_flaky_partners(
    tmp_path: Path,
) -> None:
    out = tmp_path / "faults.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "faults.py"),
        "--customers",
        str(CUSTOMERS),
        "--window",
        "40",
        "--timeout",
        "600",
        "--fast-db",
        "--json",
        str(out),
    ]
    for name, value in COMPRESSED_POLICY.items():
        command += ["--setting", f"{name}={value}"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1100, check=False)
    output = completed.stdout[-6000:] + completed.stderr[-4000:]
    assert completed.returncode == 0, output
    result = json.loads(out.read_text())

    # The platform kept every promise.
    assert [c["name"] for c in result["checks"] if not c["passed"]] == [], output
    figures = result["figures"]
    assert (figures["customers"], figures["delivered"], figures["undelivered_count"]) == (
        CUSTOMERS,
        CUSTOMERS,
        0,
    )
    assert result["statuses"] == {"sent": CUSTOMERS}
    assert figures["key_mismatches_count"] == 0
    assert result["run_state"] == "completed"
    assert result["policy"]["MESSAGE_MAX_ATTEMPTS"] == 6

    # And it did so under every fault of the plan.
    faults = [e["what"] for e in result["events"] if e["fault"]]
    assert sorted(faults) == sorted(
        [
            "SIGKILL worker",
            "restarted Redis",
            "SIGKILL worker",
            "cut PostgreSQL connections",
            "SIGKILL pool child",
        ]
    )
    replacements = [
        e["detail"].split(" ")[0] for e in result["events"] if e["what"] == "started a replacement"
    ]
    assert replacements == ["worker-sends-2", "worker-control-2"]
    assert figures["answered_fault"] > 0
    assert figures["repeats_after_fault"] > 0
    assert figures["repeats"] == figures["repeats_after_fault"] + figures["repeats_after_ok"]
    assert figures["requests"] == figures["answered_ok"] + figures["answered_fault"]
    calls = result["optimove_calls"]["GetCustomerSendDetailsByChannel"]
    assert calls.get("200", 0) >= CUSTOMERS // 100 + 1  # every page, and the empty one that ends paging
    assert sum(n for status, n in calls.items() if status != "200") > 0
