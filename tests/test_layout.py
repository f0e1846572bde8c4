"""Who may import whom: tests share helpers through modules, tools do not use test code.

* A test module imports shared code from plain modules (``tests/helpers.py``,
  ``tests/vendor_server.py``), never from another test module or from
  ``conftest`` (pytest loads conftest itself; importing it again as
  ``tests.conftest`` makes a second copy of its module state).
* ``metafs`` and ``scripts/`` never import from ``tests/``.
* The ``metafs`` package imports without the ``server`` extra (moto, boto3);
  only making a ``metafs.devserver`` server needs it, and says so.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# Imports that break the rule, to be removed when their import goes (none left).
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports (``from X import y`` gives X and X.y)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_test_modules_import_neither_each_other_nor_conftest():
    bad = []
    for path in sorted(TESTS.glob("*.py")):
        for mod in imported_modules(path):
            parts = mod.split(".")
            is_test_code = parts[0] == "conftest" or (
                parts[0] == "tests" and len(parts) > 1
                and (parts[1] == "conftest" or parts[1].startswith("test_")))
            if is_test_code and (path.name, ".".join(parts[:2])) not in KNOWN_EXCEPTIONS:
                bad.append(f"{path.name} imports {mod}")
    assert bad == []


def test_package_and_scripts_do_not_import_tests():
    files = sorted(REPO.glob("metafs/**/*.py")) + sorted(REPO.glob("scripts/*.py"))
    assert files
    bad = [f"{p.relative_to(REPO)} imports {m}" for p in files for m in imported_modules(p)
           if m == "tests" or m.startswith("tests.")]
    assert bad == []


def test_package_imports_without_the_server_extra():
    code = """
import importlib, pkgutil, sys
for name in ("moto", "boto3", "werkzeug"):
    sys.modules[name] = None  # as if not installed
import metafs
for m in pkgutil.walk_packages(metafs.__path__, "metafs."):
    if m.name != "metafs.__main__":  # it runs the CLI
        importlib.import_module(m.name)
from metafs.devserver import CountingS3Server
try:
    CountingS3Server()
except ImportError as e:
    print(e)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "pip install -e '.[server]'" in r.stdout
