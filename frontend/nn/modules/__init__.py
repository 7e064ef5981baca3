"""Every layer, one file per family, re-exported as ``frontend.nn.X``."""
from .module import Module
from .container import ModuleDict, ModuleList, Sequential
from .linear import Bilinear, Identity, Linear
from .flatten import Flatten, Unflatten
from .activation import (ELU, GELU, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, ReLU, ReLU6,
                         Sigmoid, SiLU, Softmax, Softmin, Softplus, Tanh)
from .dropout import Dropout, Dropout1d, Dropout2d, Dropout3d
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d, LayerNorm
from .sparse import Embedding
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss,
                   NLLLoss, SmoothL1Loss)
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "Module", "Sequential", "ModuleList", "ModuleDict",
    "Linear", "Bilinear", "Identity", "Flatten", "Unflatten",
    "ReLU", "ReLU6", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Softmin", "LogSoftmax",
    "GELU", "ELU", "Softplus", "SiLU", "Hardtanh", "LogSigmoid",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "Embedding",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
    "SmoothL1Loss", "HuberLoss",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d",
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
]
