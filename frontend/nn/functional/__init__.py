"""``frontend.nn.functional``: the functional forms of every layer and loss."""
from .activation import (elu, gelu, hardtanh, leaky_relu, logsigmoid, log_softmax, relu, relu6,
                         sigmoid, silu, softmax, softmin, softplus, tanh)
from .linear import bilinear, linear
from .dropout import dropout, dropout1d, dropout2d, dropout3d
from .normalization import batch_norm, layer_norm, normalize
from .sparse import embedding, one_hot
from .padding import pad
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                   huber_loss, l1_loss, mse_loss, nll_loss, smooth_l1_loss)
from .conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d
from .pooling import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
