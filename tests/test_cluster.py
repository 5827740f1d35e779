"""A two-node Ray cluster on one machine, and the docker-compose deployment file."""

from __future__ import annotations

import shlex
from functools import partial
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from autopeft.cli import app
from autopeft.objective import ACCURACY
from autopeft.runner import Runner
from autopeft.search_spaces import load_space, structure_of
from autopeft.spec import build_spec
from autopeft.store import create_study, open_db
from autopeft.workers.ray_pool import RayPool
from autopeft.workers.synthetic import SyntheticEvaluator
from tests.models import TINY_CONFIGS

ROOT = Path(__file__).resolve().parents[1]


def test_trials_run_on_both_nodes_of_a_two_node_cluster(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        pool = RayPool(partial(SyntheticEvaluator, 0.3), workers=2, cpus_per_trial=1)
        nodes = {w["pid"]: w["node_id"] for w in pool.where()}
        assert len(set(nodes.values())) == 2  # one actor per node: each node has one CPU
        spec = build_spec({}, {"model": "unused", "space": "lora", "execution.trials": 6, "budget.max_params_pct": 100})
        study = create_study(open_db(f"sqlite:///{tmp_path / 'c.db'}"), "c", spec, ACCURACY)
        study.sampler = optuna.samplers.RandomSampler(seed=0)
        Runner(spec, study, load_space("lora", structure_of(TINY_CONFIGS["bert"]())), pool).run()
        pool.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
    trials = study.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials) and len(trials) == 6
    assert {nodes[t.user_attrs["result"]["pid"]] for t in trials} == set(nodes.values())


def _commands(compose: dict) -> dict[str, list[str]]:
    out = {}
    for name, service in compose["services"].items():
        command = service.get("command")
        if command is not None:
            out[name] = command if isinstance(command, list) else shlex.split(command)
    return out


def test_compose_services_run_real_autopeft_and_ray_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "ray-head", "ray-worker", "dashboard", "search"} <= set(services)
    assert any(v.endswith("/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    gpu = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert "ports" not in services["ray-worker"]  # so `--scale ray-worker=N` works
    commands = _commands(compose)
    assert commands["ray-head"][:3] == ["ray", "start", "--head"]
    assert commands["ray-worker"][:3] == ["ray", "start", "--address=ray-head:6379"]
    from ray.scripts.scripts import cli as ray_cli
    from typer.main import get_command

    autopeft_cli = get_command(app)
    for name, argv in commands.items():
        if argv[0] == "ray":
            assert argv[1] in ray_cli.commands, name
            options = {o for p in ray_cli.commands[argv[1]].params for o in p.opts}
            assert all(a.split("=")[0] in options for a in argv[2:] if a.startswith("--")), name
        else:
            assert argv[0] == "autopeft", name
            assert argv[1] in autopeft_cli.commands, f"{name}: autopeft {argv[1]} does not exist"
            options = {o for p in autopeft_cli.commands[argv[1]].params for o in p.opts}
            assert all(a in options for a in argv[2:] if a.startswith("--")), f"{name}: unknown option in {argv}"


@pytest.mark.parametrize("path", ["Dockerfile"])
def test_dockerfile_installs_torch_first_and_the_postgres_extra(path):
    text = (ROOT / path).read_text()
    assert 'ARG EXTRAS="postgres"' in text  # the core install (transformers 5.x); EXTRAS=postgres,adapters adds AdapterHub
    assert text.index("TORCH_SPEC") < text.index('".[${EXTRAS}]"')
