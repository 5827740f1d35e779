"""`autopeft dashboard`: serve the read-only web dashboard of a study DB."""

from __future__ import annotations

import errno
import ipaddress
import socket

import typer

from autopeft.cli.app import app, fail
from autopeft.cli.studies import DEFAULT_STORAGE, STORAGE_HELP
from autopeft.store import StudyError, redact_url

TOKEN_ENV = "AUTOPEFT_DASHBOARD_TOKEN"
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1"]


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP addresses (127.0.0.0/8, ::1); any other name or address is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse (one line, exit 2) to bind a non-loopback address without an access token."""
    if not is_loopback(host) and not token:
        fail(f"--host {host} is reachable from other machines; refusing to serve the study DB without an access "
             f"token: pass --token TOKEN (or set {TOKEN_ENV}), or bind 127.0.0.1")


@app.command()
def dashboard(
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", help=STORAGE_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs --token."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to listen on."),
    token: str | None = typer.Option(None, "--token", envvar=TOKEN_ENV, show_envvar=True,
                                     help="Access token every request must carry (required off loopback)."),
    poll: float = typer.Option(3.0, "--poll", min=0.5, help="Seconds between the pages' live updates."),
):
    """Serve the read-only dashboard: studies, Pareto fronts, trials, exports (JSON API at /docs)."""
    check_exposure(host, token)
    from autopeft.dashboard import create_app

    try:
        web = create_app(storage, token=token or None, poll_seconds=poll,
                         allowed_hosts=LOOPBACK_NAMES if is_loopback(host) and not token else None)
    except StudyError as exc:
        fail(str(exc))
    _check_port(host, port)
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + ("?token=TOKEN" if token else "")
    typer.echo(f"autopeft dashboard on {url} (read-only: {redact_url(storage)}); Ctrl-C stops it")
    uvicorn.run(web, host=host, port=port, log_level="warning")


def _check_port(host: str, port: int) -> None:
    """One line naming the port and a free one to pass instead, when `host:port` cannot be bound."""
    error = _bind_error(host, port)
    if error is None:
        return
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        fail(f"cannot listen on {host}: {error.strerror or error}; pass an address of this machine as --host "
             "(127.0.0.1 by default)")
    if error.errno in (errno.EADDRINUSE, errno.EACCES):
        free = next((p for p in range(port + 1, min(port + 50, 65536)) if _bind_error(host, p) is None), None)
        hint = f"pass another one, e.g. --port {free}" if free else "pass another one with --port"
        what = "is in use (another dashboard running?)" if error.errno == errno.EADDRINUSE else "needs privileges"
        fail(f"port {port} on {host} {what}; {hint}")
    fail(f"cannot listen on {host}:{port}: {error.strerror or error}; pick another --port or --host")


def _bind_error(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            return exc
    return None
