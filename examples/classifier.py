"""The seed tutorial's convolutional ``Classifier`` ("Training a classifier"), on the digits
resized to 32x32 (one channel instead of CIFAR's three), with CrossEntropyLoss and SGD."""
import numpy as np

import digits
import frontend as torch
import frontend.nn as nn
import frontend.nn.functional as F
import frontend.optim as optim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def main():
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = digits.load(32)
    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(1)
    for epoch in range(2 if digits.quick() else 6):
        running_loss = 0.0
        for i, (inputs, labels) in enumerate(digits.batches(x_train, y_train, 16, rng)):
            optimizer.zero_grad()
            outputs = net(torch.from_numpy(inputs))
            loss = criterion(outputs, torch.from_numpy(labels))
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        print(f"[{epoch + 1}] loss: {running_loss / (i + 1):.3f}")
    print("Finished Training")

    correct = total = 0
    with torch.no_grad():
        outputs = net(torch.from_numpy(x_test))
        _, predicted = torch.max(outputs.data, 1)
        total += len(y_test)
        correct += (predicted == torch.from_numpy(y_test)).sum().item()
    accuracy = correct / total
    print(f"Accuracy of the network on the {total} test images: {100 * accuracy:.1f} %")
    assert accuracy > 0.8, accuracy


if __name__ == "__main__":
    main()
