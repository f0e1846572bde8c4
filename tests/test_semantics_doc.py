"""SEMANTICS.md against the suite: every test it names exists, every claim names one.

SEMANTICS.md says "a claim without a test is a bug"; this module makes that
mechanical (mountpoint-s3's ``semantics_doc_test`` in spirit).

**References** are backticked spans, read left to right within one claim:

* ```test_x.py::test_name``` -- a test function of ``tests/test_x.py``: defined at
  module level, or as a method of a ``Test*`` class (parametrized tests are
  plain functions to ``ast``, so they count);
* ```test_x.py::TestClass::test_name``` -- that method exactly;
* ```::test_name``` -- in the file of the previous reference of the same claim;
* ```test_x.py``` -- the whole file, which must define at least one test.

A ``tests/`` prefix is allowed.  A backticked span that looks like a reference
(it holds ``::`` or ``test_….py``) but does not parse is an error, so a typo
cannot silently stop being checked.

**Claims.**  The document is a preamble (the title and the rule itself) and
``## `` sections.  In every section except those in ``NOT_CLAIMS``, each
paragraph is one claim: a top-level bullet (``- `` at column 0) with its
continuation lines (indented lines, nested bullets), or any other paragraph
(there are none today; one added later must name a test too).  Each claim must
name at least one test.  Not claims, and so allowed to name none: the preamble
and headings, and the sections of ``NOT_CLAIMS``.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SEMANTICS = TESTS.parent / "SEMANTICS.md"

# Sections whose paragraphs are principles, not claims (the claims below make them concrete).
NOT_CLAIMS = frozenset({"Tenets"})

_SPAN = re.compile(r"`([^`]+)`")
_REF = re.compile(r"(?:tests/)?(?P<file>test_\w+\.py)?(?P<path>(?:::\w+)*)")
_LOOKS_LIKE_REF = re.compile(r"::|test_\w*\.py")


@dataclasses.dataclass
class Claim:
    section: str
    line: int  # 1-based line of its first line
    text: str  # its lines joined with spaces
    refs: list[tuple[str, tuple[str, ...]]]  # (file, ("test_x",) / ("TestC", "test_x") / ())
    errors: list[str]


def _refs(text: str, line: int) -> tuple[list[tuple[str, tuple[str, ...]]], list[str]]:
    refs: list[tuple[str, tuple[str, ...]]] = []
    errors: list[str] = []
    current: str | None = None
    for span in _SPAN.findall(text):
        if not _LOOKS_LIKE_REF.search(span):
            continue
        m = _REF.fullmatch(span)
        if m is None or not (m["file"] or m["path"]):
            errors.append(f"line {line}: cannot parse reference `{span}`")
            continue
        current = m["file"] or current
        if current is None:
            errors.append(f"line {line}: `{span}` continues no earlier reference in its claim")
            continue
        refs.append((current, tuple(p for p in m["path"].split("::") if p)))
    return refs, errors


def claims(text: str) -> list[Claim]:
    """The claims of a SEMANTICS-style document (see the module docstring)."""
    found: list[Claim] = []
    section: str | None = None  # None: the preamble
    block: list[str] = []
    start = 0

    def close() -> None:
        if block and section is not None and section not in NOT_CLAIMS:
            joined = " ".join(ln.strip() for ln in block)
            refs, errors = _refs(joined, start)
            found.append(Claim(section, start, joined, refs, errors))
        block.clear()

    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            close()
            section = line[3:].strip() if line.startswith("## ") else section
        elif not line.strip():
            close()
        elif line.startswith("- ") or not block:  # a new top-level bullet or paragraph
            close()
            block.append(line)
            start = n
        else:
            block.append(line)
    close()
    return found


def defined_tests(path: Path) -> set[tuple[str, ...]]:
    """("test_x",) for module-level tests, ("TestC", "test_x") for methods, by ``ast``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[tuple[str, ...]] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            out.add((node.name,))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            out |= {(node.name, f.name) for f in node.body
                    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test")}
    return out


def problems(text: str, tests_dir: Path) -> list[str]:
    """Everything wrong between a SEMANTICS-style document and a tests directory."""
    out: list[str] = []
    cache: dict[str, set[tuple[str, ...]] | None] = {}
    for c in claims(text):
        out += c.errors
        if not c.refs:
            out.append(f"line {c.line} ({c.section}): claim names no test: {c.text[:80]}…")
        for file, path in c.refs:
            ref = "::".join((file, *path))
            if file not in cache:
                f = tests_dir / file
                cache[file] = defined_tests(f) if f.is_file() else None
            tests = cache[file]
            if tests is None:
                out.append(f"line {c.line}: `{ref}`: no file tests/{file}")
            elif not path:
                if not tests:
                    out.append(f"line {c.line}: `{ref}` defines no test")
            elif len(path) > 2 or not (path in tests or (len(path) == 1 and any(
                    t[-1] == path[0] for t in tests))):
                out.append(f"line {c.line}: `{ref}`: tests/{file} defines no such test")
    return out


# -- the document -----------------------------------------------------------------------------

def test_every_reference_resolves_and_every_claim_names_a_test():
    assert problems(SEMANTICS.read_text(), TESTS) == []


def test_the_checker_sees_the_whole_document():
    """Guards against a parse that finds nothing (and so passes vacuously)."""
    found = claims(SEMANTICS.read_text())
    sections = {c.section for c in found}
    assert {"Names and types", "Attributes", "Extended attributes", "Caching and consistency",
            "Reading", "Failures", "Providers"} <= sections
    assert not sections & NOT_CLAIMS
    assert len(found) >= 50
    assert sum(len(c.refs) for c in found) >= 80


# -- the checker itself, on small documents ----------------------------------------------------

DOC = """\
# title

Preamble: not a claim. `tests/…::test_…`

## Tenets

1. A principle, naming no test.

## Claims

- One claim over two lines,
  checked by (`test_a.py::test_one`, `::test_two`).
- A class-based test: `test_a.py::TestK::test_m`, a method by its name alone:
  `test_a.py::test_m`, a whole file: `test_b.py`.
- Continued without a file: `::test_one`.
- Names nothing.

A paragraph that is a claim too, naming nothing.
"""

TEST_A = """\
import pytest

def test_one(): pass

@pytest.mark.parametrize("x", [1, 2])
async def test_two(x): pass

class TestK:
    def test_m(self): pass
"""


@pytest.fixture
def tests_dir(tmp_path: Path) -> Path:
    (tmp_path / "test_a.py").write_text(TEST_A)
    (tmp_path / "test_b.py").write_text("def test_b(): pass\n")
    return tmp_path


def test_checker_on_a_small_document(tests_dir: Path):
    found = claims(DOC)
    assert [c.line for c in found] == [11, 13, 15, 16, 18]
    assert found[0].refs == [("test_a.py", ("test_one",)), ("test_a.py", ("test_two",))]
    assert found[1].refs == [("test_a.py", ("TestK", "test_m")), ("test_a.py", ("test_m",)),
                             ("test_b.py", ())]
    assert problems(DOC, tests_dir) == [
        "line 15: `::test_one` continues no earlier reference in its claim",
        "line 15 (Claims): claim names no test: - Continued without a file: `::test_one`.…",
        "line 16 (Claims): claim names no test: - Names nothing.…",
        "line 18 (Claims): claim names no test: A paragraph that is a claim too, naming nothing.…",
    ]


@pytest.mark.parametrize("ref, error", [
    ("test_a.py::test_three", "tests/test_a.py defines no such test"),
    ("test_a.py::TestK::test_one", "tests/test_a.py defines no such test"),
    ("test_c.py::test_one", "no file tests/test_c.py"),
    ("test_a.py:test_one", "cannot parse reference"),
])
def test_checker_reports_dangling_references(tests_dir: Path, ref: str, error: str):
    out = problems(f"## S\n\n- claim (`{ref}`)\n", tests_dir)
    assert len(out) >= 1 and error in out[0], out
