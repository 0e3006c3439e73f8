"""Data loading: IDX files, datasets (bundled MNIST), a reproducible DataLoader, batch transforms."""
from . import synthetic, transforms
from .datasets import MNIST, Dataset, Subset, TensorDataset, random_split, stratified_subset
from .idx import read_idx, write_idx
from .loader import DataLoader
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip

__all__ = [
    "read_idx", "write_idx", "Dataset", "TensorDataset", "MNIST", "Subset", "stratified_subset",
    "random_split", "DataLoader", "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip",
    "transforms", "synthetic",
]
