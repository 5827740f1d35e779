"""The wheel installs autopeft alone at the top of site-packages, with its three mapped packages and its data;
building it (and the editable wheel) prints no setuptools warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def build(tmp_path: Path) -> tuple[Path, str]:
    """Build the wheel and the editable wheel through setuptools' own PEP 517/660 hooks (what pip calls), from a
    copy of the source tree (no stale `build/` folder in it); returns the wheel and everything the build printed."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info",
                                                             "__pycache__", "*.db", ".*_cache"))
    code = ("import sys, setuptools.build_meta as backend\n"
            "backend.build_wheel(sys.argv[1])\n"
            "backend.build_editable(sys.argv[2])")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code, str(tmp_path / "dist"), str(tmp_path / "editable")],
                          cwd=src, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("autopeft-*.whl")
    return wheel, done.stdout + done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    return build(tmp_path_factory.mktemp("build"))


def test_building_and_editable_install_print_no_setuptools_warning(built):
    """Every folder that ships (data, static files) is a declared package; the licence is an SPDX string."""
    _, output = built
    assert "running editable_wheel" in output  # both builds ran and printed their log
    assert "absent from the `packages` configuration" not in output
    warnings = [line for line in output.splitlines() if re.search(r"\w*Warning: ", line)]
    assert warnings == []


def test_wheel_ships_one_top_level_package_and_imports_from_a_fresh_venv(tmp_path, built):
    wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"autopeft"}
    for space in ("autopeft.yaml", "lora.yaml", "lora-variants.yaml", "mixed.yaml"):
        assert f"autopeft/search_spaces/{space}" in names
    for data in ("dashboard/static/dashboard.js", "dashboard/static/dashboard.css", "data/README.md",
                 "data/glue/SST-2/train.tsv", "data/glue/SST-2/dev.tsv"):
        assert f"autopeft/{data}" in names

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    assert not {"workers", "dashboard", "search_spaces", "tests"} & {p.name for p in site.iterdir()}
    # Third-party dependencies come from this test's environment, appended after the fresh site-packages.
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    code = ("import autopeft.search_spaces as s, autopeft.workers as w, autopeft.dashboard as d; "
            "print(s.__file__); print(sorted(s.builtin_spaces()))")
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split("\n")
    assert out[0].startswith(str(site))
    assert out[1] == "['autopeft', 'llm-lora', 'lora', 'lora-variants', 'mixed']"
