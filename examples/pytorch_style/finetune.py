"""Transfer learning as in PyTorch's "Transfer Learning for Computer Vision" tutorial, made
self-contained: a torchvision ResNet-18 is first trained on CIFAR-10 classes 0-4 (or loaded from
--weights), saved and reloaded as the pretrained backbone; then its parameters are frozen
(requires_grad = False), model.fc is replaced by a fresh head for classes 5-9, and only the head
is trained (the "ConvNet as fixed feature extractor" case), optionally followed by fine-tuning
the whole net at a small learning rate."""
import argparse
import copy
import os
import time

import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, models, transforms


def classes_subset(dataset, classes, limit=0):
    indices = [i for i, t in enumerate(dataset.targets) if t in classes]
    return Subset(dataset, indices[:limit] if limit else indices)


def relabel(labels, classes):
    return torch.tensor([classes.index(int(t)) for t in labels])


def train_model(model, loaders, criterion, optimizer, scheduler, num_epochs, device, classes):
    since = time.time()
    best_model_wts = copy.deepcopy(model.state_dict())
    best_acc = 0.0
    for epoch in range(num_epochs):
        for phase in ['train', 'val']:
            if phase == 'train':
                model.train()  # Set model to training mode
            else:
                model.eval()   # Set model to evaluate mode
            running_loss = 0.0
            running_corrects = 0
            seen = 0
            for inputs, labels in loaders[phase]:
                inputs = inputs.to(device)
                labels = relabel(labels, classes).to(device)
                optimizer.zero_grad()
                # track history if only in train
                with torch.set_grad_enabled(phase == 'train'):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels)
                    if phase == 'train':
                        loss.backward()
                        optimizer.step()
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data).item()
                seen += inputs.size(0)
            if phase == 'train':
                scheduler.step()
            epoch_loss = running_loss / seen
            epoch_acc = running_corrects / seen
            print(f'epoch {epoch}/{num_epochs - 1} {phase} Loss: {epoch_loss:.4f} Acc: {epoch_acc:.4f}')
            if phase == 'val' and epoch_acc >= best_acc:
                best_acc = epoch_acc
                best_model_wts = copy.deepcopy(model.state_dict())
    print(f'Training complete in {time.time() - since:.1f}s, best val Acc: {best_acc:.4f}')
    model.load_state_dict(best_model_wts)
    return model, best_acc


def main():
    parser = argparse.ArgumentParser(description='ResNet-18 transfer learning on CIFAR-10 halves')
    parser.add_argument('--data', default='./data')
    parser.add_argument('--weights', default='', help='backbone state_dict to start from (skips pretraining)')
    parser.add_argument('--pretrain-epochs', type=int, default=10)
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--finetune-epochs', type=int, default=0, help='then train everything at lr/10')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=0.01)
    parser.add_argument('--train-size', type=int, default=0, help='training images per half (0: all)')
    parser.add_argument('--test-size', type=int, default=0, help='test images per half (0: all)')
    parser.add_argument('--out', default='backbone.pth')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    normalize = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    data_transforms = {
        'train': transforms.Compose([transforms.RandomCrop(32, padding=2), transforms.ToTensor(), normalize]),
        'val': transforms.Compose([transforms.ToTensor(), normalize]),
    }
    image_datasets = {x: datasets.CIFAR10(args.data, train=(x == 'train'), download=True, transform=data_transforms[x])
                      for x in ['train', 'val']}
    limits = {'train': args.train_size, 'val': args.test_size}
    source, target = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]

    def loaders_for(classes):
        return {x: DataLoader(classes_subset(image_datasets[x], classes, limits[x]), batch_size=args.batch_size,
                              shuffle=(x == 'train'), num_workers=0) for x in ['train', 'val']}

    criterion = nn.CrossEntropyLoss()
    if not args.weights:
        # "pretraining" on the first half of the classes
        model = models.resnet18(num_classes=len(source)).to(device)
        optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
        scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, args.pretrain_epochs))
        model, _ = train_model(model, loaders_for(source), criterion, optimizer, scheduler,
                               args.pretrain_epochs, device, source)
        torch.save(model.state_dict(), args.out)
        args.weights = args.out

    # the fixed feature extractor
    model_conv = models.resnet18(num_classes=len(source))
    model_conv.load_state_dict(torch.load(args.weights, map_location=device))
    for param in model_conv.parameters():
        param.requires_grad = False
    # Parameters of newly constructed modules have requires_grad=True by default
    num_ftrs = model_conv.fc.in_features
    model_conv.fc = nn.Linear(num_ftrs, len(target))
    model_conv = model_conv.to(device)
    trainable = [name for name, p in model_conv.named_parameters() if p.requires_grad]
    print('trainable:', trainable)
    assert trainable == ['fc.weight', 'fc.bias']

    # Observe that only parameters of final layer are being optimized as opposed to before.
    optimizer_conv = optim.SGD(model_conv.fc.parameters(), lr=args.lr, momentum=0.9)
    exp_lr_scheduler = lr_scheduler.StepLR(optimizer_conv, step_size=7, gamma=0.1)
    loaders = loaders_for(target)
    model_conv, best_acc = train_model(model_conv, loaders, criterion, optimizer_conv, exp_lr_scheduler,
                                       args.epochs, device, target)

    if args.finetune_epochs:
        for param in model_conv.parameters():
            param.requires_grad = True
        optimizer_ft = optim.SGD(model_conv.parameters(), lr=args.lr / 10, momentum=0.9)
        scheduler_ft = lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)
        model_conv, best_acc = train_model(model_conv, loaders, criterion, optimizer_ft, scheduler_ft,
                                           args.finetune_epochs, device, target)
    print(f'accuracy {best_acc:.4f}')


if __name__ == '__main__':
    main()
