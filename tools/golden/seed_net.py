"""The tutorial's MNIST network (the `seed` model of bnlab), as a PyTorch module.

Parameters in state_dict order (parameters only; buffers running_mean, running_var,
num_batches_tracked of each BN module come right after that module's bias in state_dict):
    conv1.weight (32,1,3,3)   conv1.bias (32,)
    conv1_bn.weight (32,)     conv1_bn.bias (32,)
    conv2.weight (64,32,3,3)  conv2.bias (64,)
    conv2_bn.weight (64,)     conv2_bn.bias (64,)
    fc1.weight (128,9216)     fc1.bias (128,)
    fc1_bn.weight (128,)      fc1_bn.bias (128,)
    fc2.weight (10,128)       fc2.bias (10,)
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1); self.conv1_bn = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, 1); self.conv2_bn = nn.BatchNorm2d(64)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(9216, 128); self.fc1_bn = nn.BatchNorm1d(128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1_bn(self.conv1(x)))
        x = F.relu(self.conv2_bn(self.conv2(x)))
        x = F.max_pool2d(x, 2); x = self.dropout1(x); x = torch.flatten(x, 1)
        x = F.relu(self.fc1_bn(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)
