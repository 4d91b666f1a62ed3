"""The README's code runs as printed."""

from __future__ import annotations

import re
import subprocess
import sys

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
