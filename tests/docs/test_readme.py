"""The README's code runs as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)

pytest_plugins = ["pytester"]


def _block(marker: str) -> str:
    for b in BLOCKS:
        if marker in b:
            return b
    raise AssertionError(f"no README block containing {marker!r}")


def test_first_example_prints_five() -> None:  # R1 R8 R13
    code = _block("asyncio.run(main())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"


@pytest.mark.parametrize(("index", "expected"), [(0, "5"), (1, "S_OK"), (2, "done")])
def test_every_program_block_runs_as_printed(index: int, expected: str) -> None:
    # R19 R20 R27 R28 (the cancel procedure) R22 (begin/finish): each block is complete
    programs = [b for b in BLOCKS if "asyncio.run(main())" in b]
    out = subprocess.run([sys.executable, "-c", programs[index]], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_every_block_is_a_program_or_a_test_module() -> None:
    kinds = ["program" if "asyncio.run(main())" in b else
             "tests" if "@pytest.mark.comsim" in b else "fragment" for b in BLOCKS]
    assert "fragment" not in kinds, kinds
    assert kinds.count("program") == 3 and kinds.count("tests") == 1


def test_every_block_passes_mypy_strict_with_the_plugin(tmp_path: Path) -> None:
    pytest.importorskip("mypy.api")
    (tmp_path / "mypy.ini").write_text("[mypy]\nplugins = comsim.mypy\n")
    for i, block in enumerate(BLOCKS):
        (tmp_path / f"block{i}.py").write_text(block)
    # in a process of its own: mypy's heap would stay in this worker, and every full garbage
    # collection of later tests (the fuzz harness makes one per program) would walk it
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict",
                          "--config-file", str(tmp_path / "mypy.ini"),
                          "--cache-dir", str(tmp_path / ".mypy_cache"),
                          *[str(p) for p in sorted(tmp_path.glob("block*.py"))]],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_testing_example_passes_under_the_plugin(pytester: pytest.Pytester) -> None:  # R29
    pytester.makepyfile(test_readme_example=_block("@pytest.mark.comsim"))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=50)


def test_failing_seed_is_reported_and_replayable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fail="""
import pytest

@pytest.mark.comsim(seeds=range(3))
async def test_fails_on_seed_1(comsim_runtime, comsim_seed):
    assert comsim_runtime.seed == comsim_seed
    assert comsim_seed != 1
""")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*replay with --comsim-seed 1*"])
    replay = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--comsim-seed", "1")
    replay.assert_outcomes(failed=1)


def test_readme_state_diagram_is_drawn_from_the_table() -> None:  # R21 R22 R28 (the table)
    import importlib.util

    spec = importlib.util.spec_from_file_location("draw", ROOT / "scripts" / "draw_callobj.py")
    assert spec is not None and spec.loader is not None
    draw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw)
    assert draw.diagram() in README, "run: python scripts/draw_callobj.py --readme"


def test_readme_placement_table_is_printed_from_the_rule_table() -> None:  # R33
    import importlib.util

    spec = importlib.util.spec_from_file_location("place", ROOT / "scripts" / "draw_placement.py")
    assert spec is not None and spec.loader is not None
    place = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(place)
    assert place.table() in README, "run: python scripts/draw_placement.py --readme"
