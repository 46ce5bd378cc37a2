"""The package as users install it: the wheel built from this checkout holds every file of the
`bot` tree (templates, migrations and their `script.py.mako`, the demo's payloads and playbooks,
whatever is added next), and `backout demo` runs from it in a fresh virtualenv, away from the
checkout. pip reaches only the package registry (through its cache when it can), with the
versions in constraints.txt. About 30 s on an idle machine; `make image-test` does the same in the Docker image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# What the build reads: the project's metadata and the package, nothing else from the checkout.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "bot")


def package_files(root: Path) -> set[str]:
    """Every file under root/bot, as a wheel names it, without Python's byte-code caches."""
    return {path.relative_to(root).as_posix() for path in (root / "bot").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}


def run(*args: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """A command with the outside environment but none of Backout's settings or this checkout's path."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("BACKOUT_") and name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stderr[-3000:]}\n{done.stdout[-2000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built by pip from a copy of the sources (so no build/ folder lands in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", work / "dist", source,
        cwd=work, timeout=300)
    [built] = (work / "dist").glob("backout-*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    """The wheel's files under bot/ are exactly the package tree's: a template, a migration or demo
    data that pyproject's package-data forgets fails here, not in a user's `backout demo`."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    shipped = {name for name in names if name.startswith("bot/")}
    tree = package_files(ROOT)
    assert sorted(tree - shipped) == [], "in the package tree but not in the wheel: add them to package-data"
    assert sorted(shipped - tree) == [], "in the wheel but not in the package tree"
    assert {name.split("/")[0] for name in names} == {"bot", wheel.name.split("-py3")[0] + ".dist-info"}
    assert {"bot/adapters/export/templates/postmortem.md", "bot/adapters/storage/migrations/script.py.mako",
            "bot/demo/data/playbooks/checkout.yaml"} <= shipped


def test_backout_demo_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """A fresh virtualenv, the wheel installed with the pinned dependencies, `backout demo` run in an
    empty folder: the draft (Markdown from postmortem.md), the page and the chart are written."""
    venv = tmp_path / "venv"
    # This venv's pip installs into it (`--python`): no pip of its own to set up, and no byte-code
    # compiled ahead for every dependency; together they take two thirds of the time off.
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, timeout=120)
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-compile",
        "-c", ROOT / "constraints.txt", wheel, cwd=tmp_path, timeout=600)
    where = run(venv / "bin" / "python", "-c", "import bot; print(bot.__file__)", cwd=tmp_path, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(venv), "the installed package, not the checkout's"
    done = run(venv / "bin" / "backout", "demo", "--out", "demo", cwd=tmp_path, timeout=300)
    assert "Traceback" not in done.stderr
    out = tmp_path / "demo"
    assert (out / "INC-1.md").read_text(encoding="utf-8").startswith("# INC-1")
    assert "<img" in (out / "INC-1.html").read_text(encoding="utf-8")
    assert (out / "INC-1.png").read_bytes().startswith(b"\x89PNG")
