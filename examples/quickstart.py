"""The seed quickstart: a ``Flatten`` + ``Sequential`` network trained with CrossEntropyLoss,
predictions through ``Softmax``; on the digits upsampled to 28x28 as the model expects."""
import numpy as np

import digits
import frontend as torch
from frontend import nn
from frontend.utils.data import DataLoader, TensorDataset


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


def train_loop(dataloader, model, loss_fn, optimizer):
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return loss.item()


def test_loop(dataloader, model, loss_fn):
    model.eval()
    size, correct, test_loss = len(dataloader.dataset), 0, 0.0
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).float().sum().item()
    return correct / size, test_loss / len(dataloader)


def main():
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = digits.load(28)
    train_data = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    test_data = TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test))
    train_dataloader = DataLoader(train_data, batch_size=64, shuffle=True)
    test_dataloader = DataLoader(test_data, batch_size=64)

    model = NeuralNetwork()
    print(model)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for t in range(4 if digits.quick() else 10):
        loss = train_loop(train_dataloader, model, loss_fn, optimizer)
        accuracy, test_loss = test_loop(test_dataloader, model, loss_fn)
        print(f"Epoch {t + 1}: train loss {loss:>7f}, test accuracy {100 * accuracy:>0.1f}%, "
              f"avg test loss {test_loss:>8f}")

    X = torch.from_numpy(x_test[:5])
    logits = model(X)
    pred_probab = nn.Softmax(dim=1)(logits)
    y_pred = pred_probab.argmax(1)
    print(f"Predicted class: {y_pred.tolist()}, true: {y_test[:5].tolist()}")
    assert np.allclose(pred_probab.sum(1).detach().numpy(), 1.0, atol=1e-5)
    assert accuracy > 0.8, accuracy


if __name__ == "__main__":
    main()
