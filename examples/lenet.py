"""The seed tutorial's LeNet ("Neural Networks" in the 60-minute blitz), then trained on
the digits (padded to 32x32) with MSELoss against one-hot targets and optim.SGD.

``make demo`` runs this file.
"""
import time

import numpy as np

import digits
import frontend as torch
import frontend.nn as nn
import frontend.nn.functional as F
import frontend.optim as optim


class Net(nn.Module):

    def __init__(self):
        super(Net, self).__init__()
        # 1 input image channel, 6 output channels, 5x5 square convolution kernel
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        # an affine operation: y = Wx + b
        self.fc1 = nn.Linear(16 * 5 * 5, 120)  # 5*5 from image dimension
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        # Max pooling over a (2, 2) window
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        # If the size is a square, you can specify with a single number
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)  # flatten all dimensions except the batch dimension
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def tutorial(net):
    """The tutorial's walk through parameters, backward and one manual update."""
    print(net)
    params = list(net.parameters())
    print(len(params))
    print(params[0].size())  # conv1's .weight
    assert len(params) == 10 and tuple(params[0].size()) == (6, 1, 5, 5)

    input = torch.randn(1, 1, 32, 32)
    out = net(input)
    print(out)
    net.zero_grad()
    out.backward(torch.randn(1, 10))

    output = net(input)
    target = torch.randn(10)  # a dummy target, for example
    target = target.view(1, -1)  # make it the same shape as output
    criterion = nn.MSELoss()
    loss = criterion(output, target)
    print(loss)
    print(loss.grad_fn)  # MSELoss
    print(loss.grad_fn.next_functions[0][0])  # Linear
    print(loss.grad_fn.next_functions[0][0].next_functions[0][0])  # ReLU
    assert loss.grad_fn.name() == "MseLossBackward0"

    net.zero_grad()  # zeroes the gradient buffers of all parameters
    print('conv1.bias.grad before backward')
    print(net.conv1.bias.grad)
    loss.backward()
    print('conv1.bias.grad after backward')
    print(net.conv1.bias.grad)

    learning_rate = 0.01
    for f in net.parameters():
        f.data.sub_(f.grad.data * learning_rate)

    optimizer = optim.SGD(net.parameters(), lr=0.01)
    optimizer.zero_grad()   # zero the gradient buffers
    output = net(input)
    loss = criterion(output, target)
    loss.backward()
    optimizer.step()    # Does the update


def train(net, epochs, forward=None, batch_size=64):
    """Train on the digits; ``forward`` is the (possibly compiled) callable to use."""
    forward = forward or net
    x_train, y_train, x_test, y_test = digits.load(32)
    one_hot = np.eye(10, dtype=np.float32)
    optimizer = optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    criterion = nn.MSELoss()
    rng = np.random.default_rng(0)
    step_times = []
    for epoch in range(epochs):
        for xb, yb in digits.batches(x_train, y_train, batch_size, rng):
            start = time.perf_counter()
            optimizer.zero_grad()
            loss = criterion(forward(torch.from_numpy(xb)), torch.from_numpy(one_hot[yb]))
            loss.backward()
            optimizer.step()
            step_times.append(time.perf_counter() - start)
        print(f"epoch {epoch}: loss {loss.item():.4f}")
    with torch.no_grad():
        predicted = forward(torch.from_numpy(x_test)).argmax(1).numpy()
    accuracy = float((predicted == y_test).mean())
    return accuracy, step_times


def training_step(make_forward, batch_size=64):
    """A fresh LeNet, compiled by ``make_forward``, and a function running one training
    step on the next batch of digits; returns ``(step, forward)``."""
    torch.manual_seed(0)
    net = Net()
    forward = make_forward(net)
    x_train, y_train, _, _ = digits.load(32)
    one_hot = np.eye(10, dtype=np.float32)
    batches = list(digits.batches(x_train, y_train, batch_size, np.random.default_rng(0)))
    optimizer = optim.SGD(net.parameters(), lr=0.01)
    position = [0]

    def step():
        xb, yb = batches[position[0] % len(batches)]
        position[0] += 1
        optimizer.zero_grad()
        nn.MSELoss()(forward(torch.from_numpy(xb)), torch.from_numpy(one_hot[yb])).backward()
        optimizer.step()
    return step, forward


def step_times_ms(steps, per_mode=21, rounds=3, settle_s=0.15):
    """Median milliseconds of each mode's training step. The modes take turns in
    ``rounds`` blocks, each after ``settle_s`` of untimed steps, so that a busy moment of
    the machine, or threads the previous mode left spinning, hit every mode alike (the
    method of ``kiln bench``)."""
    for step in steps.values():
        step()                               # traces and compiles
    times = {mode: [] for mode in steps}
    for _ in range(rounds):
        for mode, step in steps.items():
            until = time.perf_counter() + settle_s
            while time.perf_counter() < until:
                step()
            for _ in range(-(-per_mode // rounds)):
                start = time.perf_counter()
                step()
                times[mode].append(time.perf_counter() - start)
    return {mode: 1e3 * float(np.median(t)) for mode, t in times.items()}


def main():
    torch.manual_seed(0)
    net = Net()
    tutorial(net)

    print("\nOne training step, batch 64 (median of 21, modes taking turns):")
    made = {
        "eager": training_step(lambda net: net),
        "compiled, unfused": training_step(lambda net: torch.compile(net, fuse=False)),
        "compiled, fused": training_step(lambda net: torch.compile(net)),
    }
    ms = step_times_ms({mode: step for mode, (step, _) in made.items()})
    for mode, (_, forward) in made.items():
        kernels = forward.kernel_count() if hasattr(forward, "kernel_count") else None
        count = f"{kernels} kernels (forward + backward)" if kernels is not None else "-"
        print(f"  {mode:18s} {ms[mode]:8.2f} ms   {count}")
    fused_ms = ms["compiled, fused"]
    print(f"  fused is {ms['eager'] / fused_ms:.1f}x faster than eager, "
          f"{ms['compiled, unfused'] / fused_ms:.1f}x faster than unfused")

    print("\nTraining the compiled (fused, LLVM) LeNet on the digits:")
    torch.manual_seed(0)
    net = Net()
    compiled = torch.compile(net)
    accuracy, step_times = train(net, epochs=4 if digits.quick() else 10, forward=compiled)
    print(f"LeNet test accuracy: {accuracy:.3f} (chance is 0.100); compiled step median "
          f"{1e3 * float(np.median(step_times[1:])):.1f} ms")
    assert accuracy > 0.8, accuracy


if __name__ == "__main__":
    main()
