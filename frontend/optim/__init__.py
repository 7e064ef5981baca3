"""Optimizers and learning-rate schedulers: Kiln's ``torch.optim``.

Usage is the same as in PyTorch::

    import frontend as torch
    import frontend.optim as optim

    opt = optim.Adam(model.parameters(), lr=1e-3)
    sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()

Every optimizer implements torch's single-tensor ("foreach=False") algorithm
with the same order of floating-point operations, so results match PyTorch to
float32 rounding.
"""

from . import lr_scheduler
from .adagrad import Adadelta, Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "lr_scheduler",
]
