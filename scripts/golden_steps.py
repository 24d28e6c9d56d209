"""How far this machine's TFLite runtime lands from a package's golden outputs, in output steps (JSON out).

Runs each package's golden self-test (:func:`forcecast.edge.selftest.run_golden`) on every kernel set the
installed runtime offers (LiteRT: default with XNNPACK, reference kernels, builtin without delegates;
tflite-runtime: its default) and 1 and 2 threads, and prints one JSON object per run::

    python scripts/golden_steps.py tests/data/grf_int8.fcpkg tests/data/grf_float32.fcpkg
    PYTHONPATH=. .venv-tflite-runtime/bin/python scripts/golden_steps.py tests/data/grf_int8.fcpkg

No signature check: it measures execution, not trust.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

from forcecast.edge.interpreter import TFLiteModel, runtime_module
from forcecast.edge.package import read_package
from forcecast.edge.selftest import run_golden


def kernel_sets(module: Any) -> dict[str, Any]:
    """Interpreter factories by kernel-set name (just the default where the runtime has no resolver choice)."""
    resolvers = getattr(module, "OpResolverType", None)
    if resolvers is None:
        return {"default": module.Interpreter}
    names = ("AUTO", "BUILTIN_REF", "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    return {
        name: functools.partial(module.Interpreter, experimental_op_resolver_type=getattr(resolvers, name))
        for name in names
        if hasattr(resolvers, name)
    }


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per package, kernel set and thread count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", type=Path, nargs="+", metavar="PKG")
    args = parser.parse_args(argv)
    module = runtime_module()
    original = module.Interpreter
    try:
        for path in args.packages:
            package = read_package(path)
            for name, factory in kernel_sets(module).items():
                module.Interpreter = factory
                for threads in (1, 2):
                    model = TFLiteModel(package.model, num_threads=threads)
                    result = run_golden(model, package.manifest["golden"])
                    line = {
                        "package": path.name,
                        "runtime": model.runtime,
                        "kernels": name,
                        "threads": threads,
                        "ok": result.ok,
                        "worst_steps": result.worst_steps,
                        "mean_steps": round(result.mean_steps, 3),
                    }
                    print(json.dumps(line), flush=True)
    finally:
        module.Interpreter = original
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
