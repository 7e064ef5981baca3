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


def step_time_ms(make_forward, steps=20, batch_size=64):
    """Median milliseconds of a training step (after the first, which traces/compiles)."""
    torch.manual_seed(0)
    net = Net()
    forward = make_forward(net)
    x_train, y_train, _, _ = digits.load(32)
    one_hot = np.eye(10, dtype=np.float32)
    optimizer = optim.SGD(net.parameters(), lr=0.01)
    times = []
    for i, (xb, yb) in enumerate(digits.batches(x_train, y_train, batch_size,
                                                np.random.default_rng(0))):
        if i == steps + 1:
            break
        start = time.perf_counter()
        optimizer.zero_grad()
        nn.MSELoss()(forward(torch.from_numpy(xb)), torch.from_numpy(one_hot[yb])).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    kernels = forward.kernel_count() if hasattr(forward, "kernel_count") else None
    return 1e3 * float(np.median(times[1:])), kernels


def main():
    torch.manual_seed(0)
    net = Net()
    tutorial(net)

    print("\nOne training step, batch 64 (median of 20):")
    results = {
        "eager": step_time_ms(lambda net: net),
        "compiled, unfused": step_time_ms(lambda net: torch.compile(net, fuse=False)),
        "compiled, fused": step_time_ms(lambda net: torch.compile(net)),
    }
    for mode, (ms, kernels) in results.items():
        count = f"{kernels} kernels (forward + backward)" if kernels is not None else "-"
        print(f"  {mode:18s} {ms:8.2f} ms   {count}")
    eager_ms, fused_ms = results["eager"][0], results["compiled, fused"][0]
    print(f"  fused is {eager_ms / fused_ms:.1f}x faster than eager, "
          f"{results['compiled, unfused'][0] / fused_ms:.1f}x faster than unfused")

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
