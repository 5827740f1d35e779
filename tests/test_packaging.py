"""The wheel installs autopeft alone at the top of site-packages, with its three mapped packages."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_one_top_level_package_and_imports_from_a_fresh_venv(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("autopeft-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"autopeft"}
    for space in ("autopeft.yaml", "lora.yaml", "lora-variants.yaml", "mixed.yaml"):
        assert f"autopeft/search_spaces/{space}" in names

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
