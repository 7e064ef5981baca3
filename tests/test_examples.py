"""Every example runs as a script (quick mode: fewer epochs, the same claims asserted)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = ["autograd_basics", "custom_functions", "lenet", "classifier", "quickstart",
           "gru_sequence", "dcgan"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_and_its_claims_hold(name):
    env = dict(os.environ, KILN_EXAMPLE_QUICK="1")
    env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLES.parent), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], cwd=EXAMPLES,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    if name in ("lenet", "classifier", "quickstart", "gru_sequence", "custom_functions"):
        assert "accuracy" in result.stdout.lower()


def test_lenet_tutorial_claims():
    """The seed tutorial's claims: 10 parameters, conv1.weight is 6x1x5x5, and
    print(net) is PyTorch's text."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import lenet
    finally:
        sys.path.remove(str(EXAMPLES))
    net = lenet.Net()
    params = list(net.parameters())
    assert len(params) == 10 and tuple(params[0].size()) == (6, 1, 5, 5)
    assert repr(net) == (
        "Net(\n"
        "  (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))\n"
        "  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))\n"
        "  (fc1): Linear(in_features=400, out_features=120, bias=True)\n"
        "  (fc2): Linear(in_features=120, out_features=84, bias=True)\n"
        "  (fc3): Linear(in_features=84, out_features=10, bias=True)\n"
        ")")
