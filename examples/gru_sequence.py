"""A GRU sequence model: each digit is read as a sequence of 8 rows of 8 pixels."""
import numpy as np

import digits
import frontend as torch
import frontend.nn as nn
import frontend.optim as optim


class SequenceClassifier(nn.Module):
    def __init__(self, input_size=8, hidden_size=64, num_classes=10):
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, h_n = self.gru(x)        # output: (batch, seq, hidden)
        return self.head(output[:, -1])  # the last step summarises the sequence


def main():
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = digits.load(8)
    model = SequenceClassifier()
    print(model)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    for epoch in range(3 if digits.quick() else 8):
        for xb, yb in digits.batches(x_train[:, 0], y_train, 64, rng):
            optimizer.zero_grad()
            loss = criterion(model(torch.from_numpy(xb)), torch.from_numpy(yb))
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x_test[:, 0])).argmax(1).numpy() == y_test).mean()
    print(f"GRU test accuracy: {accuracy:.3f} (chance is 0.100)")
    assert accuracy > 0.8, accuracy


if __name__ == "__main__":
    main()
