"""The docs' Python examples run as written, and print what the docs say they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUNNABLE = ["concepts.md", "tables.md", "engine.md"]
BLOCK = re.compile(r"```python\n(.*?)```(?:\n\nprints\n\n```\n(.*?)```)?", re.S)


def _examples():
    for name in RUNNABLE:
        path = DOCS / name
        if not path.exists():
            continue
        for i, (code, expected) in enumerate(BLOCK.findall(path.read_text())):
            yield pytest.param(name, code, expected, id=f"{name}-{i}")


@pytest.mark.parametrize(("doc", "code", "expected"), list(_examples()))
def test_doc_example_runs(doc, code, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, doc, "exec"), {"__name__": "__doc_example__"})  # runs our own docs
    if expected:
        assert out.getvalue().strip() == expected.strip()


def test_readme_examples_run_in_order(tmp_path, monkeypatch):
    """The README's blocks run one after the other in one folder, as a new user would."""
    readme = DOCS.parent / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for i, code in enumerate(blocks):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"README-{i}", "exec"), {"__name__": "__doc_example__"})  # our README
    assert (tmp_path / "score.html").stat().st_size > 10_000
    assert (tmp_path / "predictions.parquet").exists()
