"""PyTorch twins of fastconv.vision.models for the benchmarks: torchvision's models (built without
downloading anything) and, for the models torchvision lacks, reference implementations with the
same module names (the CIFAR ResNets in akamaster's layout with option-A shortcuts, the demo LeNet).
"""
from __future__ import annotations

import sys
import types

CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}


def _torchvision_models():
    # torchvision's compiled ops do not load against a CPU-only torch: stub the module registering them
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision.models

    return torchvision.models


def cifar_resnet(torch, n: int, num_classes: int = 10):
    """He et al. 2016's CIFAR ResNet (6n + 2 layers, option-A shortcuts)."""
    tnn, F = torch.nn, torch.nn.functional

    class PadShortcut(tnn.Module):
        def __init__(self, planes):
            super().__init__()
            self.planes = planes

        def forward(self, x):
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4), "constant", 0)

    class Block(tnn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.shortcut = PadShortcut(planes) if stride != 1 or cin != planes else tnn.Sequential()

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class CifarResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(16)
            cin, stages = 16, []
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for s in [stride] + [1] * (n - 1):
                    blocks.append(Block(cin, planes, s))
                    cin = planes
                stages.append(tnn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.linear = tnn.Linear(64, num_classes)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))

    return CifarResNet()


def lenet(torch, num_classes: int = 10):
    """The README demo network (fastconv.vision.models.lenet's layers and keys)."""
    tnn = torch.nn
    return tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(32, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(32 * 7 * 7, 128), tnn.ReLU(), tnn.Linear(128, num_classes))


def build(torch, name: str, **kwargs):
    """The PyTorch model of a fastconv.vision.models name."""
    if name in CIFAR_DEPTHS:
        return cifar_resnet(torch, CIFAR_DEPTHS[name], **kwargs)
    if name == "lenet":
        return lenet(torch, **kwargs)
    return getattr(_torchvision_models(), name)(weights=None, **kwargs)
