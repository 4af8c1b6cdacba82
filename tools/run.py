"""`make run`: private PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are given), migrate,
a local admin user, the sandbox's demo client, then web + worker + beat together until Ctrl-C or a
SIGTERM, either of which stops them all, the private servers included. Servers a killed run left behind
are stopped by the next one before it starts its own."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.metrics.multiproc import multiprocess_dir_reset  # noqa: E402
from tools.devservers import PostgresServer, RedisServer, free_port, port_is_free, read_env_file  # noqa: E402

VAR = ROOT / "var"
ENV_FILE = VAR / "dev.env"
VENV_BIN = Path(sys.executable).parent
STOP_SECONDS = 20  # honcho's own grace period for its processes is 5 s


def _port(saved_url: str | None) -> int:
    if saved_url:
        try:
            port = int(saved_url.rsplit(":", 1)[1].split("/", 1)[0])
            if port_is_free(port):
                return port
        except (IndexError, ValueError):
            pass
    return free_port()


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, env=env, cwd=ROOT)


def supervise(command: list[str], *, env: dict[str, str]) -> int:
    """Runs `command` until it ends. A SIGTERM (a supervisor, `kill`) is passed on to it, and so is a
    Ctrl-C, which a terminal also gives it: it stops its processes and this returns, so that the caller
    stops the private servers afterwards. A second Ctrl-C stops waiting."""
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            return process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def main() -> int:
    VAR.mkdir(exist_ok=True)
    VAR.chmod(0o755)
    saved = read_env_file(ENV_FILE)
    started: list[PostgresServer | RedisServer] = []
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    web_port = env.get("PORT") or ("8000" if port_is_free(8000) else str(free_port()))
    env["PORT"] = web_port
    env["VENV_BIN"] = str(VENV_BIN)
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{web_port}")
    if "PROMETHEUS_MULTIPROC_DIR" not in env:  # apps.metrics: web and workers share their counters here
        env["PROMETHEUS_MULTIPROC_DIR"] = str(VAR / "metrics")
        multiprocess_dir_reset(VAR / "metrics")
    managed: dict[str, str] = {}
    try:
        if "DATABASE_URL" not in os.environ:
            pg = PostgresServer(VAR / "pg", _port(saved.get("DATABASE_URL")))
            print(f"Starting a private PostgreSQL on 127.0.0.1:{pg.port} (data in var/pg)...", flush=True)
            pg.start()
            started.append(pg)
            managed["DATABASE_URL"] = pg.url
        if "REDIS_URL" not in os.environ:
            rs = RedisServer(VAR / "redis", _port(saved.get("REDIS_URL")))
            print(f"Starting a private Redis on 127.0.0.1:{rs.port} (data in var/redis)...", flush=True)
            rs.start()
            started.append(rs)
            managed["REDIS_URL"] = rs.url
        ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in managed.items()))
        env.update(managed)

        _manage("migrate", "--no-input", "-v", "0", env=env)
        password = secrets.token_urlsafe(12)
        env["DEV_ADMIN_PASSWORD"] = password
        _manage("dev_admin", env=env)
        _manage("sandbox_bootstrap", "--public-base-url", env["PUBLIC_BASE_URL"], env=env)
        print(f"\nAdmin: {env['PUBLIC_BASE_URL']}/admin/  (Ctrl-C stops everything)\n", flush=True)
        honcho = [str(VENV_BIN / "honcho"), "start", "-f", str(ROOT / "Procfile.dev")]
        return supervise(honcho, env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        for server in reversed(started):
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
