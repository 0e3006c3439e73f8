"""A small U-Net (Ronneberger et al. 2015) for semantic segmentation on synthetic shapes: each
image holds a rectangle (class 1) and a disc (class 2) of random size, position and colour over a
noisy background (class 0). Encoder-decoder with a ConvTranspose2d and an nn.Upsample path,
torch.cat skip connections, per-pixel CrossEntropyLoss; reports pixel accuracy and mean IoU."""
import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def make_shapes(n, size, rng):
    """n RGB images (n, 3, size, size) in [0, 1] and their masks (n, size, size) of class ids."""
    images = rng.uniform(0.0, 0.35, (n, 3, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), dtype=np.int64)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        h, w = rng.integers(size // 5, size // 2, 2)
        top, left = rng.integers(0, size - h), rng.integers(0, size - w)
        rect = (yy >= top) & (yy < top + h) & (xx >= left) & (xx < left + w)
        r = rng.integers(size // 8, size // 4)
        cy, cx = rng.integers(r, size - r, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        for mask, label in ((rect, 1), (disc, 2)):  # the disc is drawn over the rectangle
            colour = rng.uniform(0.4, 1.0, 3).astype(np.float32)
            images[i][:, mask] = colour[:, None]
            masks[i][mask] = label
    images += rng.normal(0, 0.05, images.shape).astype(np.float32)
    return images, masks


def double_conv(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=3, base=16):
        super().__init__()
        self.inc = double_conv(n_channels, base)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), double_conv(base, base * 2))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), double_conv(base * 2, base * 4))
        self.up1 = nn.ConvTranspose2d(base * 4, base * 2, kernel_size=2, stride=2)
        self.conv1 = double_conv(base * 4, base * 2)
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True),
                                 nn.Conv2d(base * 2, base, kernel_size=1))
        self.conv2 = double_conv(base * 2, base)
        self.outc = nn.Conv2d(base, n_classes, kernel_size=1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x = self.up1(x3)
        # pad in case the input size is not divisible by 4
        dy, dx = x2.size(2) - x.size(2), x2.size(3) - x.size(3)
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        x = self.conv1(torch.cat([x2, x], dim=1))
        x = self.up2(x)
        x = F.interpolate(x, size=x1.shape[2:], mode='nearest')  # no-op unless sizes differ
        x = self.conv2(torch.cat([x1, x], dim=1))
        return self.outc(x)


def confusion(pred, target, n_classes):
    return torch.bincount((target * n_classes + pred).flatten(), minlength=n_classes ** 2).reshape(n_classes, n_classes)


def main():
    parser = argparse.ArgumentParser(description='U-Net on synthetic shapes')
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=1e-2)
    parser.add_argument('--train-size', type=int, default=1024)
    parser.add_argument('--test-size', type=int, default=256)
    parser.add_argument('--image-size', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data', default=None, help='unused: the data are generated')
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    n_classes = 3

    x_train, y_train = make_shapes(args.train_size, args.image_size, rng)
    x_test, y_test = make_shapes(args.test_size, args.image_size, rng)
    train_loader = DataLoader(TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)),
                              batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test)),
                             batch_size=64)

    model = UNet(3, n_classes).to(device)
    # class weights against the background's majority
    counts = torch.bincount(torch.from_numpy(y_train).flatten(), minlength=n_classes).float()
    criterion = nn.CrossEntropyLoss(weight=(counts.sum() / (n_classes * counts)).to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                                    steps_per_epoch=len(train_loader))

    for epoch in range(args.epochs):
        model.train()
        epoch_loss = 0.0
        for images, masks in train_loader:
            images, masks = images.to(device), masks.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), masks)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += loss.item() * images.size(0)
        print(f'epoch {epoch + 1}/{args.epochs} loss {epoch_loss / len(train_loader.dataset):.4f}')

    model.eval()
    matrix = torch.zeros(n_classes, n_classes, dtype=torch.long)
    with torch.no_grad():
        for images, masks in test_loader:
            pred = model(images.to(device)).argmax(dim=1)
            matrix += confusion(pred, masks.to(device), n_classes)
    matrix = matrix.double()
    iou = matrix.diag() / (matrix.sum(0) + matrix.sum(1) - matrix.diag())
    print('IoU per class:', ' '.join(f'{v:.3f}' for v in iou.tolist()))
    print(f'pixel_accuracy {(matrix.diag().sum() / matrix.sum()).item():.4f}')
    print(f'miou {iou.mean().item():.4f}')


if __name__ == '__main__':
    main()
