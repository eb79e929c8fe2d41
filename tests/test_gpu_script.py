"""benchmarks/gpu.sh, the one command a lent GPU machine runs: its dry run on the CPU, so that it cannot rot."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_the_gpu_script_dry_run_resolves_every_step(tmp_path):
    out = tmp_path / "gpu"
    env = os.environ | {"OUT": str(out), "DEVICE": "cpu", "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / "benchmarks/gpu.sh"), "--dry-run"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steps = (out / "steps.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in steps[1:]] == ["device-tests", "thesis-smoke", "benchmark"]
    assert all(line.endswith("\tok") for line in steps[1:]), steps
    assert "torch" in (out / "environment.txt").read_text()
    # the workflow resolved every chapter of the thesis-smoke configuration: 3 networks, 7 metric chapters each
    plan = (out / "thesis-smoke.log").read_text()
    stats = plan[plan.index("Job stats:"):].splitlines()
    counts = dict(line.split() for line in stats[3:10])
    assert counts == {"benchmark": "1", "classroom": "1", "faithfulness": "1", "train": "3", "metric": "21",
                      "summary": "1", "all": "1"}
    assert "test_device.py" in (out / "device-tests.log").read_text()
