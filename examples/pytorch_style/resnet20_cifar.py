"""ResNet-20 for CIFAR-10 (He et al. 2016, section 4.2) as research code writes it: BasicBlock with
the option-A (zero-padded, strided identity) shortcut, SGD with Nesterov momentum and weight
decay, MultiStepLR or CosineAnnealingLR, standard crop+flip augmentation."""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.init as init
import torch.optim as optim
import torchvision
import torchvision.transforms as transforms


def _weights_init(m):
    if isinstance(m, nn.Linear) or isinstance(m, nn.Conv2d):
        init.kaiming_normal_(m.weight)


class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super(LambdaLayer, self).__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, option='A'):
        super(BasicBlock, self).__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == 'A':
                # CIFAR ResNet paper: subsample by 2 and zero-pad the new channels
                pad = planes // 4
                self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))
            elif option == 'B':
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(self.expansion * planes)
                )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10, option='A'):
        super(ResNet, self).__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], 1, option)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], 2, option)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], 2, option)
        self.linear = nn.Linear(64, num_classes)
        self.apply(_weights_init)

    def _make_layer(self, block, planes, num_blocks, stride, option):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride, option))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def resnet20(option='A'):
    return ResNet(BasicBlock, [3, 3, 3], option=option)


def cifar_resnet(depth, option='A'):
    """ResNet-(6n+2): 8, 14, 20, 32, 44, 56, 110."""
    assert (depth - 2) % 6 == 0, 'depth must be 6n+2'
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n, n, n], option=option)


def train(loader, model, criterion, optimizer, device):
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * targets.size(0)
        correct += outputs.argmax(1).eq(targets).sum().item()
        seen += targets.size(0)
    return total_loss / seen, correct / seen


def evaluate(loader, model, device):
    model.eval()
    correct, seen = 0, 0
    with torch.no_grad():
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            correct += model(inputs).argmax(1).eq(targets).sum().item()
            seen += targets.size(0)
    return correct / seen


def main():
    parser = argparse.ArgumentParser(description='ResNet-20 on CIFAR-10')
    parser.add_argument('--data', default='./data')
    parser.add_argument('--epochs', type=int, default=182)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--lr', type=float, default=0.1)
    parser.add_argument('--momentum', type=float, default=0.9)
    parser.add_argument('--weight-decay', type=float, default=1e-4)
    parser.add_argument('--schedule', choices=['multistep', 'cosine'], default='multistep')
    parser.add_argument('--depth', type=int, default=20)
    parser.add_argument('--shortcut', choices=['A', 'B'], default='A')
    parser.add_argument('--train-size', type=int, default=0)
    parser.add_argument('--test-size', type=int, default=0)
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    train_set = torchvision.datasets.CIFAR10(root=args.data, train=True, download=True, transform=transforms.Compose([
        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(32, 4),
        transforms.ToTensor(),
        normalize,
    ]))
    test_set = torchvision.datasets.CIFAR10(root=args.data, train=False, transform=transforms.Compose([
        transforms.ToTensor(),
        normalize,
    ]))
    if args.train_size:
        train_set = torch.utils.data.Subset(train_set, range(args.train_size))
    if args.test_size:
        test_set = torch.utils.data.Subset(test_set, range(args.test_size))
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                                               num_workers=args.workers, drop_last=True)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=256, shuffle=False, num_workers=args.workers)

    model = cifar_resnet(args.depth, args.shortcut).to(device)
    print('parameters:', sum(p.numel() for p in model.parameters() if p.requires_grad))
    criterion = nn.CrossEntropyLoss().to(device)
    optimizer = optim.SGD(model.parameters(), args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay, nesterov=True)
    if args.schedule == 'cosine':
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    else:
        milestones = [int(args.epochs * 0.5), int(args.epochs * 0.75)]
        scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)

    best = 0.0
    for epoch in range(args.epochs):
        start = time.time()
        loss, train_acc = train(train_loader, model, criterion, optimizer, device)
        scheduler.step()
        acc = evaluate(test_loader, model, device)
        best = max(best, acc)
        print(f'epoch {epoch + 1}/{args.epochs} lr {optimizer.param_groups[0]["lr"]:.4f} loss {loss:.4f} '
              f'train {train_acc:.3f} test {acc:.3f} ({time.time() - start:.1f}s)')
    print(f'accuracy {acc:.4f}')


if __name__ == '__main__':
    main()
