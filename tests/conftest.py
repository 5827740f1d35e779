from __future__ import annotations

import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
logging.getLogger("adapters").setLevel(logging.ERROR)

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Skip `@pytest.mark.adapters` tests where AdapterHub is not installed (the core env); `make test` runs
    them in .venv-adapters (`pytest -m adapters`)."""
    from autopeft.optional import adapters_available

    if adapters_available():
        return
    skip = pytest.mark.skip(reason="needs the adapters extra; `make test` runs it in .venv-adapters")
    for item in items:
        if item.get_closest_marker("adapters") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on loopback for this test session; skipped where PostgreSQL is not installed."""
    from tests import postgres

    if not postgres.available():
        pytest.skip("PostgreSQL is not installed (make system-deps installs it)")
    server = postgres.PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    return postgres_server.new_database()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: tiny models and GP fits run faster so on 2 shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A saved tiny random BERT (4 layers, hidden 32) with a WordPiece tokenizer over SST-2 words."""
    from tests.tiny_model import save_tiny_bert

    return str(save_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def glue_dir():
    from tests.tiny_model import GLUE_DIR

    return str(GLUE_DIR)
