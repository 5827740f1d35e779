"""Screenshots of the dashboard's studies, study and trial pages for the docs (docs/images/*.png).

    python benchmarks/dashboard_screenshots.py [--out docs/images]

Builds a throwaway study DB (synthetic trials with real plans on a BERT-base shaped config), serves
it on a free loopback port and photographs the pages in headless Chromium (Debian's `chromium`).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import uvicorn

from autopeft.dashboard import create_app
from benchmarks.dashboard_synthetic import BERT_BASE, build_study, fast_sqlite_storage, write_model_dir

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(storage_url: str, **kwargs) -> Iterator[str]:
    """Run the dashboard on a free loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(storage_url, **kwargs), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def demo_db(directory: Path) -> str:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model = write_model_dir(directory / "bert-base-uncased", BERT_BASE)
    url = f"sqlite:///{directory / 'autopeft.db'}"
    storage = fast_sqlite_storage(url)
    build_study(storage, "bert-base-sst2-lora", model, n_trials=240, space="lora", budget_pct=1.0, running=3, bulk=True)
    build_study(storage, "bert-base-rte-mixed", model, n_trials=120, space="mixed", task="glue:rte", budget_pct=2.0,
                seed=1, bulk=True)
    build_study(storage, "bert-base-cola-autopeft", model, n_trials=90, space="autopeft", task="glue:cola",
                budget_pct=1.5, seed=2, bulk=True)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images", help="directory for the PNG files")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, serve(demo_db(Path(tmp))) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 420}, device_scale_factor=1)
        page.goto(f"{base}/")
        page.wait_for_selector("table.table tbody tr")
        page.screenshot(path=str(out / "dashboard-studies.png"), full_page=True)
        page.set_viewport_size({"width": 1360, "height": 900})
        page.goto(f"{base}/studies/1")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "dashboard-study.png"), full_page=True)
        best = page.eval_on_selector("#pareto-plot", "d => d.data[2].customdata[d.data[2].customdata.length - 2]")
        page.goto(f"{base}/studies/1/trials/{best}")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "dashboard-trial.png"), full_page=True)
        browser.close()
    for name in ("studies", "study", "trial"):
        print(out / f"dashboard-{name}.png")


if __name__ == "__main__":
    main()
