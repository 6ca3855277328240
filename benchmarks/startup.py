"""How long `opsplay --help` and `import opsplay` (the library) take, against
`python -c "import click"` in the same venv.

Prints the median of several runs of each and their ratios (targets: `opsplay --help` at most
1.5x, `import opsplay` at most 1.0x: the library loads Ansible and ansible-runner only when a
run starts).
Usage: .venv/bin/python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_seconds(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    baseline = median_seconds([sys.executable, "-c", "import click"], runs)
    opsplay = median_seconds([sys.executable, "-m", "opsplay", "--help"], runs)
    library = median_seconds([sys.executable, "-c", "import opsplay"], runs)
    print(f"python -c 'import click':   {baseline * 1000:7.1f} ms (median of {runs})")
    print(f"opsplay --help:             {opsplay * 1000:7.1f} ms (median of {runs})")
    print(f"python -c 'import opsplay': {library * 1000:7.1f} ms (median of {runs})")
    print(f"ratio --help / click:       {opsplay / baseline:7.2f} (target <= 1.5)")
    print(f"ratio import opsplay / click: {library / baseline:5.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()
