"""The ``comsim`` command in-process: ``comsim bench`` (options, JSON, plot, progress) and
``comsim trace`` (each format, and its errors). Tiny sizes: no timing is asserted."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import comsim
import comsim.testing
from comsim import _cli
from comsim._bench import command

TRACE_METHODS = ("to_text", "to_mermaid", "to_chrome_trace")
HAS_RENDERERS = all(hasattr(comsim.testing.Trace, m) for m in TRACE_METHODS)
needs_renderers = pytest.mark.skipif(
    not HAS_RENDERERS, reason="comsim.testing.Trace.to_text/to_mermaid/to_chrome_trace "
                              "not there yet")

ROW_NAMES = {"same apartment", "STA->STA", "MTA->STA", "STA->MTA", "STA->STA Begin_/Finish_",
             "STA->STA, Runtime(cpu=N)", "STA->STA Cancel(0)->Finish_",
             "deterministic STA->STA", "STA->NA"}


# ----------------------------------------------------------------------------- comsim bench
def test_bench_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        _cli.main(["bench", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--n", "--rounds", "--rows", "--json", "--plot", "--quick"):
        assert option in out
    assert "comsim[plot]" in out
    for key in ("same", "sta-sta", "cancel", "det"):
        assert f"  {key} " in out


def test_bench_quick_json_records_the_run_and_every_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "bench.json"
    assert _cli.main(["bench", "--quick", "--json", str(out_file)]) == 0
    data = json.loads(out_file.read_text())
    for key in ("python", "platform", "cpu_count", "comsim_version", "n", "rounds", "rows"):
        assert key in data
    assert data["comsim_version"] == comsim.__version__
    assert (data["n"], data["rounds"]) == (command.QUICK_N, command.QUICK_ROUNDS)
    names = {row["name"] for row in data["rows"]}
    assert ROW_NAMES <= names <= ROW_NAMES | {"STA->STA, STAs on 2 CPUs"}
    for row in data["rows"]:
        assert row["p50_us"] > 0 and row["p99_us"] >= row["p50_us"]
        assert row["baseline_p50_us"] > 0 and row["baseline_p99_us"] >= row["baseline_p50_us"]
        assert row["ratio_p50"] > 0
        assert len(row["round_ratios"]) == data["rounds"]
    # the table, aligned, on stdout; no progress: stdout is not a terminal
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "STA->STA Begin_/Finish_" in line]
    assert len(lines) == 1 and lines[0].rstrip().endswith("x │")
    widths = {len(line.rstrip()) for line in out.splitlines() if line.startswith(("│", "┃"))}
    assert len(widths) == 1  # every row of the table as wide as the header
    assert "\x1b[" not in out


def test_bench_rows_chooses_rows_and_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["bench", "--rows", "same,det", "--n", "40", "--rounds", "2",
                      "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)  # only the JSON on stdout
    assert [row["key"] for row in data["rows"]] == ["same", "det"]


def test_bench_json_to_a_directory_is_refused_before_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: the whole benchmark ran, then IsADirectoryError with a traceback
    assert _cli.main(["bench", "--rows", "same", "--n", "10", "--rounds", "1",
                      "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a directory; give a file name" in err


def test_bench_unknown_row_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        _cli.main(["bench", "--rows", "same,nope"])
    assert e.value.code == 2
    assert "unknown row nope" in capsys.readouterr().err


def test_bench_plot_without_matplotlib_names_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    png = tmp_path / "out.png"
    assert _cli.main(["bench", "--quick", "--plot", str(png)]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "comsim[plot]" in err
    assert not png.exists()


def test_bench_plot_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "out.png"
    assert _cli.main(["bench", "--rows", "same,det", "--n", "40", "--rounds", "2",
                      "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(command, "PROGRESS_AFTER", 0.0)  # show it at once
    monkeypatch.delenv("NO_COLOR", raising=False)
    for tty, shown in ((False, False), (True, True)):
        out = Tty() if tty else io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        assert _cli.main(["bench", "--rows", "det", "--n", "40", "--rounds", "2"]) == 0
        monkeypatch.undo()
        monkeypatch.setattr(command, "PROGRESS_AFTER", 0.0)
        text = out.getvalue()
        assert ("2/2" in text) is shown, text  # the bar's rounds done / rounds
        assert "deterministic STA->STA" in text  # the table either way


# ----------------------------------------------------------------------------- comsim trace
SCENARIO = '''
import comsim


class ICalc(comsim.Interface):
    async def Add(self, a: int, b: int) -> int: ...


class Calc(comsim.CoClass, ICalc):
    async def Add(self, a, b):
        return a + b


async def scenario(rt):
    a = await rt.create_sta("a")
    b = await rt.create_sta("b")

    async def make():
        return comsim.marshal_interface(Calc(), ICalc)

    stream = await b.run(make)

    async def call():
        return await comsim.unmarshal_interface(stream).Add(1, 2)

    assert await a.run(call) == 3


async def boom(rt):
    raise ValueError("the scenario failed on purpose")


def not_async(rt):
    pass


async def no_runtime():
    pass
'''


@pytest.fixture
def scenarios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A scenario module in the current directory; its (unique) module name."""
    name = f"cli_scenarios_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SCENARIO))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def _trace(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = _cli.main(["trace", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@needs_renderers
def test_trace_text(scenarios: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _trace([f"{scenarios}:scenario"], capsys)
    assert rc == 0
    assert "call.sent" in out or "Add" in out


@needs_renderers
def test_trace_mermaid(scenarios: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _trace([f"{scenarios}:scenario", "--format", "mermaid"], capsys)
    assert rc == 0
    assert out.lstrip().startswith("sequenceDiagram")


@needs_renderers
def test_trace_chrome_to_a_file_is_json(scenarios: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "trace.json"
    rc, out, err = _trace([f"{scenarios}:scenario", "--format", "chrome", "--seed", "3",
                           "-o", str(dest)], capsys)
    assert rc == 0 and out == "" and str(dest) in err
    data = json.loads(dest.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    assert events and all("ph" in e for e in events)


@needs_renderers
def test_trace_same_seed_same_trace(scenarios: str, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    first = _trace([f"{scenarios}:scenario", "--seed", "7"], capsys)
    assert first == _trace([f"{scenarios}:scenario", "--seed", "7"], capsys)


def test_trace_picks_the_format_and_writes_it(scenarios: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Each --format calls its Trace method on the captured events (stand-ins here, so
    that this holds whatever the renderers write)."""

    def fake(kind: str) -> Any:
        def render(self: comsim.testing.Trace) -> Any:
            names = self.names()
            return {"traceEvents": names} if kind == "chrome" else f"{kind}: {names}"

        return render

    for fmt, method in _cli.FORMATS.items():
        monkeypatch.setattr(comsim.testing.Trace, method, fake(fmt), raising=False)
    rc, out, _ = _trace([f"{scenarios}:scenario"], capsys)
    assert rc == 0 and out.startswith("text: [") and "call.sent" in out
    rc, out, _ = _trace([f"{scenarios}:scenario", "--format", "mermaid"], capsys)
    assert rc == 0 and out.startswith("mermaid: [")
    dest = tmp_path / "c.json"
    rc, out, _ = _trace([f"{scenarios}:scenario", "--format", "chrome", "-o", str(dest)],
                        capsys)
    assert rc == 0 and out == ""
    assert "call.sent" in json.loads(dest.read_text())["traceEvents"]


def test_trace_accepts_a_path_to_a_py_file(scenarios: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(comsim.testing.Trace, "to_text", lambda self: "ok", raising=False)
    monkeypatch.chdir("/")
    rc, out, _ = _trace([f"{tmp_path / scenarios}.py:scenario"], capsys)
    assert (rc, out) == (0, "ok\n")


@pytest.mark.parametrize(("target", "message"), [
    ("no_colon", "expected MODULE:FUNCTION"),
    ("no_such_module_xyz:scenario", "no module named 'no_such_module_xyz'"),
    ("{mod}:missing", "has no 'missing'"),
    ("{mod}:not_async", "is not an async function"),
    ("{mod}:no_runtime", "must take one argument, the runtime"),
    ("/no/such/file.py:scenario", "no such file"),
])
def test_trace_bad_target_is_a_clear_error(scenarios: str, target: str, message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _trace([target.format(mod=scenarios)], capsys)
    assert rc == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_trace_scenario_raising_is_brief(scenarios: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _trace([f"{scenarios}:boom"], capsys)
    assert rc == 1 and out == ""
    assert "ValueError: the scenario failed on purpose" in err
    assert f"{scenarios}.py" in err  # where it was raised
    assert "Traceback" not in err and len(err.splitlines()) <= 3


def test_trace_module_failing_to_import_is_brief(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cli_broken_mod.py").write_text("def oops(:\n")
    monkeypatch.chdir(tmp_path)
    rc, _, err = _trace(["cli_broken_mod:scenario"], capsys)
    assert rc == 2 and "SyntaxError" in err and "Traceback" not in err


class _GoneReader(io.TextIOBase):
    """Standard output whose reader went away: every write raises BrokenPipeError."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.fd


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # ``comsim demo | head -1``: before, the demo ended in a BrokenPipeError traceback; now
    # exit status 1, and standard output goes to devnull for the flush at exit
    import os

    with open(tmp_path / "out", "w") as own:
        monkeypatch.setattr(sys, "stdout", _GoneReader(own.fileno()))
        assert _cli.main(["demo"]) == 1
        os.write(own.fileno(), b"after")  # the descriptor now leads to devnull
    assert (tmp_path / "out").read_bytes() == b""
