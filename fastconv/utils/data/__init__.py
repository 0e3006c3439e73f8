"""``torch.utils.data`` for fastconv: datasets, samplers, ``default_collate`` and ``DataLoader``.

    from fastconv.utils.data import Dataset, TensorDataset, DataLoader, random_split

Batches are fastconv Tensors. ``fastconv.data`` (bundled MNIST, reproducible/resumable loader,
batch transforms) is built on these samplers and collation.
"""
from .collate import default_collate, default_convert
from .dataloader import DataLoader, WorkerInfo, get_worker_info
from .dataset import (
    ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset, random_split,
)
from .sampler import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler,
)

__all__ = [
    "Dataset", "IterableDataset", "TensorDataset", "StackDataset", "ConcatDataset", "ChainDataset", "Subset",
    "random_split", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
    "BatchSampler", "DataLoader", "get_worker_info", "WorkerInfo", "default_collate", "default_convert",
]
