"""``make bench``: every benchmark script in this folder, one after another, output as it comes.

Each script prints its own machine line and tables (see benchmarks/README.md); they run in turn,
never side by side, so they do not slow each other down. Extra arguments name scripts to run
(``python benchmarks/run.py throughput footprint``).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"run.py", "common.py"}


def main() -> None:
    wanted = set(sys.argv[1:])
    scripts = [p for p in sorted(HERE.glob("*.py")) if p.name not in NOT_BENCHMARKS
               and (not wanted or p.stem in wanted)]
    failed = []
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=str(HERE.parent)).returncode:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
