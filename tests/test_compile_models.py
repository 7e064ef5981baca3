"""Every example model compiled: outputs, every parameter gradient and running statistics
equal eager execution; a compiled model trained on the digits follows eager's loss curve."""
import copy
import sys
from pathlib import Path

import numpy as np
import pytest

import frontend as torch
import frontend.nn as nn
import frontend.optim as optim
from test_compile import BACKENDS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
import classifier  # noqa: E402
import custom_functions  # noqa: E402
import dcgan  # noqa: E402
import digits  # noqa: E402
import gru_sequence  # noqa: E402
import lenet  # noqa: E402
import quickstart  # noqa: E402

sys.path.remove(str(EXAMPLES))


def _rand(*shape):
    return torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


MODELS = {
    "lenet": (lenet.Net, lambda: (_rand(8, 1, 32, 32),)),
    "classifier": (classifier.Net, lambda: (_rand(4, 1, 32, 32),)),
    "quickstart": (quickstart.NeuralNetwork, lambda: (_rand(5, 1, 28, 28),)),
    "gru": (gru_sequence.SequenceClassifier, lambda: (_rand(6, 8, 8),)),
    "dcgan_generator": (dcgan.Generator, lambda: (_rand(4, dcgan.nz, 1, 1),)),
    "dcgan_discriminator": (dcgan.Discriminator, lambda: (_rand(4, 1, 16, 16),)),
    "custom_rnn_cell": (lambda: custom_functions.RNN(8, 16, 10),
                        lambda: (_rand(4, 8), _rand(4, 16))),
}


def _close(a, b, what):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=2e-4, atol=2e-5,
                               err_msg=what)


def _outputs(out):
    return [o for o in (out if isinstance(out, tuple) else (out,)) if isinstance(o, torch.Tensor)]


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_example_model_compiled_equals_eager(name, backend, fuse):
    make_model, make_inputs = MODELS[name]
    torch.manual_seed(0)
    eager = make_model()
    model = copy.deepcopy(eager)
    compiled = torch.compile(model, backend=backend, fuse=fuse)
    for call in range(3):   # trace, then twice compiled (buffers evolve in between)
        inputs = make_inputs()
        for m in (eager, model):
            m.zero_grad()
        want = _outputs(eager(*inputs))
        got = _outputs(compiled(*inputs))
        assert len(got) == len(want)
        for k, (g, w) in enumerate(zip(got, want)):
            _close(g, w, f"call {call}: output {k}")
        sum(o.float().sum() for o in want if o.requires_grad).backward()
        sum(o.float().sum() for o in got if o.requires_grad).backward()
        for (pname, p), q in zip(model.named_parameters(), eager.parameters()):
            _close(p.grad, q.grad, f"call {call}: gradient of {pname}")
        for (bname, b), c in zip(model.named_buffers(), eager.buffers()):
            _close(b, c, f"call {call}: buffer {bname}")
    assert compiled.cache_info().hits >= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_lenet_follows_eager_loss_curve_on_digits(backend):
    x_train, y_train, _, _ = digits.load(32)
    one_hot = np.eye(10, dtype=np.float32)
    torch.manual_seed(0)
    eager = lenet.Net()
    model = copy.deepcopy(eager)
    compiled = torch.compile(model, backend=backend)
    curves = []
    for net, forward in ((eager, eager), (model, compiled)):
        opt = optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
        rng = np.random.default_rng(0)
        losses = []
        for step, (xb, yb) in enumerate(digits.batches(x_train, y_train, 64, rng)):
            if step == 15:
                break
            opt.zero_grad()
            loss = nn.MSELoss()(forward(torch.from_numpy(xb)), torch.from_numpy(one_hot[yb]))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves.append(losses)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-3, atol=1e-5)
    assert curves[0][-1] < curves[0][0]
