"""``kiln bench``: the table and the JSON layout the issue specifies."""
import json
import subprocess
import sys


def test_bench_writes_the_json_layout(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "frontend.cli", "bench", "-w", "W1", "-m", "eager", "-m",
         "fused", "--backend", "eager", "--reps", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "W1" in result.stdout and "median ms" in result.stdout
    data = json.loads(out.read_text())
    row = data["results"]["W1"]["fused"]
    for key in ("median_ms", "min_ms", "max_ms", "kernels", "compile_s"):
        assert key in row
    assert row["kernels"] >= 1 and data["results"]["W1"]["eager"]["kernels"] is None
    assert "python" in data["machine"] and data["threads"] == 2


def test_kiln_help_lists_bench():
    result = subprocess.run([sys.executable, "-m", "frontend.cli", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "bench" in result.stdout
