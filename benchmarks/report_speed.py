"""How long the course report takes (issue 25's aim: under 30 s on 2 cores for the shipped model on the bundled
sample).

1. `python -m fer_core.report` as a user runs it, in a fresh process with an empty prediction cache: Python's
   start, the imports, the model and data, every section, the HTML written.
2. The same build in this process (cold prediction cache), section by section.
3. The baseline, measured in the same run: one evaluation pass over the split (the predictions the Confusion
   Matrix page waits for), so the report's cost reads as a multiple of it.

  python benchmarks/report_speed.py [--checkpoint checkpoints/fer_best.pt] [--data samples/fer2013_sample.npz]

Prints the CPU, torch's thread count and the load average beside the figures. Other jobs slow every wall
time; the CPU seconds each step used, divided by the threads, tell what it would take on idle cores.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from fer_core import interpret, load_model, load_split, report  # noqa: E402
from fer_core.calibrate import cpu_name  # noqa: E402


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "fer_best.pt"))
    p.add_argument("--data", default=str(ROOT / "samples" / "fer2013_sample.npz"))
    p.add_argument("--split", default="test")
    a = p.parse_args()
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, FER_CACHE_DIR=str(Path(tmp) / "cli-cache"))  # no cached predictions
        t0, c0 = time.perf_counter(), _child_cpu()
        done = subprocess.run([sys.executable, "-m", "fer_core.report", "--checkpoint", a.checkpoint, "--data", a.data,
                               "--split", a.split, "--out", str(Path(tmp) / "report.html")], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        cli, cli_cpu = time.perf_counter() - t0, _child_cpu() - c0
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return 1
        size = (Path(tmp) / "report.html").stat().st_size
        os.environ["FER_CACHE_DIR"] = str(Path(tmp) / "cache")
        model, prep = load_model(a.checkpoint)
        faces = load_split(a.data, a.split)
        t0, c0 = time.perf_counter(), time.process_time()
        base = interpret.predictions(model, prep, faces, cache=False)
        baseline, baseline_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        rep = report.build(model, prep, faces, a.checkpoint)
        rep.html()
        build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    parts = ", ".join(f"{k} {v:.1f}" for k, v in rep.seconds.items())
    print(f"report of {a.checkpoint} on {a.data} ({a.split}, {len(faces):,} faces, accuracy "
          f"{(base.pred == base.true).mean():.4f})")
    n = torch.get_num_threads()
    print(f"  command line, empty prediction cache: {cli:.1f} s wall, {cli_cpu:.1f} CPU s (/{n} threads: "
          f"{cli_cpu / n:.1f} s on idle cores); start, imports, model and data, report, {size / 1024:,.0f} KB written")
    print(f"  build in process: {build:.1f} s wall, {build_cpu:.1f} CPU s ({parts} s wall)")
    print(f"  baseline, one evaluation pass over the split: {baseline:.2f} s wall, {baseline_cpu:.1f} CPU s -> the "
          f"report costs {build / baseline:.1f}x it in process ({build_cpu / baseline_cpu:.1f}x in CPU time), "
          f"{cli / baseline:.1f}x from the command line")
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
