"""Render the seed scenario's trace as a picture with the real Mermaid CLI.

The seed scenario is Microsoft's "Canceling an Asynchronous Call" as the README runs it:
``Begin_Work``, ``QueryInterface(ICancelMethodCalls)``, ``Cancel(0)``, ``Release``,
``Finish_Work``. Here it runs three times on one deterministic runtime (seed 1, virtual time),
arranged so that the cancel finds the call in each of R29's stages in turn: ``queued`` (the
worker STA is busy), ``running`` (the server is interrupted, R30) and ``finished`` (the server
is done and its reply, 5 ms on the way, is dropped). ``Trace.to_mermaid()`` draws it; ``mmdc``
(``@mermaid-js/mermaid-cli`` from npm) renders it with Debian's headless Chromium.

    python scripts/render_trace.py                       # docs/seed-scenario.png (and .mmd)
    python scripts/render_trace.py -o docs/x.svg         # any of .png, .svg, .pdf
    python scripts/render_trace.py --print               # only print the Mermaid text

Needs ``node`` and ``npm`` (``apt-get install -y nodejs npm``) and Chromium
(``apt-get install -y chromium``); the CLI is installed with ``npm install`` into
``$MMDC_DIR`` (default: a temporary directory) with ``PUPPETEER_SKIP_DOWNLOAD=1``, and
Puppeteer is pointed at ``$CHROMIUM`` (default ``/usr/bin/chromium``). Not part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

import comsim  # noqa: E402
from comsim import hresult as hr  # noqa: E402
from comsim.testing import Trace, capture_trace, run  # noqa: E402

MERMAID_CLI = "@mermaid-js/mermaid-cli@11"


class IWork(comsim.Interface):
    async def Work(self, seconds: float) -> str: ...


class Worker(comsim.CoClass, IWork):
    cancel_policy = "interrupt"  # a cancel reaching the running method interrupts it (R30)

    async def Work(self, seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"


AsyncIWork = comsim.async_interface(IWork)


async def seed_procedure(stream: comsim.MarshalStream, work: float, wait: float) -> str:
    """Begin_Work(work); after ``wait``: QueryInterface(ICancelMethodCalls), Cancel(0),
    Release, Finish_Work. Gives Finish_Work's outcome."""
    proxy = comsim.unmarshal_interface(stream, IWork)
    factory = proxy.QueryInterface(comsim.ICallFactory)
    call: Any = factory.CreateCall(AsyncIWork)
    factory.Release()
    call.Begin_Work(work)
    await anyio.sleep(wait)
    cancel = call.QueryInterface(comsim.ICancelMethodCalls)
    await cancel.Cancel(0)
    cancel.Release()
    try:
        outcome = repr(await call.Finish_Work())
    except comsim.COMError as exc:
        outcome = hr.name(exc.hresult)
    call.Release()
    return outcome


async def scenario() -> Trace:
    with capture_trace() as events:
        async with comsim.Runtime(deterministic=True, seed=1) as rt:
            ui, worker = await rt.create_sta("ui"), await rt.create_sta("worker")

            async def serve() -> comsim.MarshalStream:
                # table-strong: each of the three procedures unmarshals its own proxy
                return comsim.marshal_interface(Worker(), IWork,
                                                flags=comsim.MSHLFLAGS.TABLESTRONG)

            stream = await worker.run(serve)

            # queued: the worker STA is busy (a non-COM wait), the request waits in line
            started = comsim.ManualResetEvent()

            async def keep_busy() -> None:
                started.Signal()
                await anyio.sleep(0.004)

            busy = asyncio.ensure_future(worker.run(keep_busy))
            await started.Wait(0, comsim.INFINITE)
            await ui.run(seed_procedure, stream, 0.010, 0.001)
            await busy
            # running: the server has started its 10 ms of work
            await ui.run(seed_procedure, stream, 0.010, 0.001)
            # finished: 2 ms of work, the reply takes 5 ms back, the cancel comes at 3 ms
            rt.set_latency(0.005, source="worker", target="ui")
            await ui.run(seed_procedure, stream, 0.002, 0.003)
            await anyio.sleep(0.010)  # the late reply lands, and is dropped
    return events


def render(source: Path, out: Path) -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nodejs npm")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        sys.exit(f"no Chromium at {chromium}: apt-get install -y chromium (or set CHROMIUM)")
    env = {**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"}
    with tempfile.TemporaryDirectory(prefix="comsim-mmdc-") as tmp:
        prefix = Path(os.environ.get("MMDC_DIR", tmp))
        mmdc = prefix / "node_modules" / ".bin" / "mmdc"
        if not mmdc.exists():
            print(f"npm install {MERMAID_CLI} into {prefix}", file=sys.stderr)
            subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit",
                            "--no-fund", MERMAID_CLI], check=True, env=env)
        config = Path(tmp) / "puppeteer.json"
        config.write_text(json.dumps({"executablePath": chromium, "args": ["--no-sandbox"]}))
        subprocess.run([str(mmdc), "-p", str(config), "-i", str(source), "-o", str(out),
                        "-b", "white", "-s", "2"], check=True, env=env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "seed-scenario.png")
    parser.add_argument("--print", action="store_true", help="print the Mermaid text only")
    args = parser.parse_args(argv)
    text = run(scenario).to_mermaid()
    if args.print:
        print(text, end="")
        return
    out: Path = args.output.resolve()
    source = out.with_suffix(".mmd")  # kept beside the picture: the text it was drawn from
    source.write_text(text)
    render(source, out)
    print(f"wrote {out} (from {source})")


if __name__ == "__main__":
    main()
