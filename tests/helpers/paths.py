"""Where the project's files are, and loading an example from ``examples/`` (not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = ROOT / "examples"


def load_example(name: str, *, prefix: str = "comsim_example_",
                 register: bool = True) -> ModuleType:
    """Import ``examples/<name>.py`` from its path as module ``<prefix><name>``.

    With ``register`` the module is put in ``sys.modules`` (so that pickling, R11, can find its
    classes), and taken out again if running it fails; without, it is only returned.
    """
    path = EXAMPLES_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{prefix}{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if not register:
        spec.loader.exec_module(module)
        return module
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module
