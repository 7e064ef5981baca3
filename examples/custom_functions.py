"""The seed tutorial's custom autograd Functions (legacy style, as written there), a Linear
Module built on them, and a vanilla RNN built from those, trained on the digits
(each 8x8 image read as a sequence of 8 rows)."""
import numpy as np

import digits
import frontend as torch
import frontend.nn as nn
from frontend.autograd import Function, Variable


class ReLUF(Function):
    def forward(self, input):
        self.save_for_backward(input)
        output = input.clamp(min=0)
        return output

    def backward(self, output_grad):
        input = self.to_save[0]
        input_grad = output_grad.clone()
        input_grad[input < 0] = 0
        return input_grad


class LinearF(Function):
    def forward(self, input, weight, bias=None):
        self.save_for_backward(input, weight, bias)
        output = torch.mm(input, weight.t())
        if bias is not None:
            output += bias.unsqueeze(0).expand_as(output)
        return output

    def backward(self, grad_output):
        input, weight, bias = self.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if self.needs_input_grad[0]:
            grad_input = torch.mm(grad_output, weight)
        if self.needs_input_grad[1]:
            grad_weight = torch.mm(grad_output.t(), input)
        if bias is not None and self.needs_input_grad[2]:
            grad_bias = grad_output.sum(0).squeeze(0)
        return grad_input, grad_weight, grad_bias


class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super(Linear, self).__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.Tensor(out_features, in_features))
        if bias:
            self.bias = nn.Parameter(torch.Tensor(out_features))
        else:
            self.register_parameter('bias', None)
        bound = 1.0 / np.sqrt(in_features)
        self.weight.data.uniform_(-bound, bound)
        if bias:
            self.bias.data.uniform_(-bound, bound)

    def forward(self, input):
        return LinearF()(input, self.weight, self.bias)


class RNN(nn.Module):
    """h_t = relu(W [x_t, h_{t-1}] + b): the tutorial's cell, from the Functions above."""

    def __init__(self, input_size, hidden_size, output_size):
        super(RNN, self).__init__()
        self.hidden_size = hidden_size
        self.i2h = Linear(input_size + hidden_size, hidden_size)
        self.h2o = Linear(hidden_size, output_size)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        hidden = ReLUF()(self.i2h(combined))
        output = self.h2o(hidden)
        return output, hidden

    def init_hidden(self, batch):
        return Variable(torch.zeros(batch, self.hidden_size))


def check_against_builtin_linear():
    """The hand-written Function gives the same gradients as autograd's own linear."""
    x = torch.randn(4, 3, requires_grad=True)
    lin = Linear(3, 2)
    LinearF()(x, lin.weight, lin.bias).sum().backward()
    grads = [x.grad.clone(), lin.weight.grad.clone(), lin.bias.grad.clone()]
    x.grad = None
    lin.zero_grad()
    (x.mm(lin.weight.t()) + lin.bias).sum().backward()
    for mine, ref in zip(grads, [x.grad, lin.weight.grad, lin.bias.grad]):
        assert torch.allclose(mine, ref, atol=1e-6)
    print("LinearF gradients match autograd's:", True)


def main():
    torch.manual_seed(0)
    check_against_builtin_linear()
    x_train, y_train, x_test, y_test = digits.load(8)
    rnn = RNN(8, 64, 10)
    optimizer = torch.optim.SGD(rnn.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)

    def run(images):
        seq = torch.from_numpy(images[:, 0])            # (batch, 8 rows, 8 columns)
        hidden = rnn.init_hidden(seq.shape[0])
        for t in range(seq.shape[1]):
            output, hidden = rnn(seq[:, t], hidden)
        return output

    epochs = 3 if digits.quick() else 10
    for epoch in range(epochs):
        for xb, yb in digits.batches(x_train, y_train, 32, rng):
            optimizer.zero_grad()
            loss = criterion(run(xb), torch.from_numpy(yb))
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")
    with torch.no_grad():
        accuracy = (run(x_test).argmax(1).numpy() == y_test).mean()
    print(f"RNN test accuracy: {accuracy:.3f} (chance is 0.100)")
    assert accuracy > 0.5, accuracy


if __name__ == "__main__":
    main()
