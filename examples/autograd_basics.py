"""The seed tutorial's autograd basics, with Kiln in place of PyTorch."""
import frontend as torch
from frontend.autograd import Variable

# A tensor that records the operations applied to it
x = Variable(torch.ones(2, 2), requires_grad=True)
y = x + 2
print(y.grad_fn)          # <AddBackward0 ...>
z = y * y * 3
out = z.mean()
print(z, out)
out.backward()
print(x.grad)             # d(out)/dx = 4.5 everywhere
assert torch.allclose(x.grad, torch.full((2, 2), 4.5))

# x**2 + 3*y: gradients of a two-input expression
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = torch.tensor([4.0, 5.0, 6.0], requires_grad=True)
f = (x ** 2 + 3 * y).sum()
f.backward()
print(x.grad, y.grad)     # 2*x and 3
assert torch.allclose(x.grad, 2 * x.detach()) and torch.allclose(y.grad, torch.full((3,), 3.0))

# backward on a non-scalar output needs the vector of the vector-Jacobian product
x = torch.randn(3, requires_grad=True)
y = x * 2
while float((y.data ** 2).sum().sqrt()) < 1000:  # ||y|| < 1000
    y = y * 2
v = torch.tensor([0.1, 1.0, 0.0001])
y.backward(gradient=v)
print(x.grad)
scale = (y.detach() / x.detach()).mean()
assert torch.allclose(x.grad, v * scale)

# autograd.grad returns gradients instead of accumulating them, and can build a graph
x = torch.tensor(2.0, requires_grad=True)
(dy,) = torch.autograd.grad(x ** 3, x, create_graph=True)
(d2y,) = torch.autograd.grad(dy, x)
print(dy, d2y)            # 3x^2 = 12, 6x = 12
assert dy.item() == 12.0 and d2y.item() == 12.0

# no_grad: nothing is recorded
with torch.no_grad():
    print((x ** 2).requires_grad)  # False
print("autograd basics: OK")
