"""Pickles of model classes written for a test: the class lives in a module file in the test's folder,
so a server started with that folder on PYTHONPATH can load it (the pickle names the module)."""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path


def pickled(folder: Path, module: str, code: str, *classes: str) -> dict[str, Path]:
    """Write `code` as folder/module.py and one pickle per class (an instance): {class: pickle path}."""
    (folder / f"{module}.py").write_text(code)
    sys.path.insert(0, str(folder))
    try:
        loaded = importlib.import_module(module)
        paths = {}
        for name in classes:
            paths[name] = folder / f"{name}.pkl"
            paths[name].write_bytes(pickle.dumps(getattr(loaded, name)()))
        return paths
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(module, None)
