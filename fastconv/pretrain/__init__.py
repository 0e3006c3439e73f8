"""Unsupervised filter pretraining: k-means (Coates & Ng) and convolutional k-means (Dundar et al.).

``kmeans_filters`` learns the filters of one layer from unlabeled images; ``pretrain_conv_layers``
fills every Conv2d of a Sequential layer by layer. The building blocks are public: random patch
extraction (Cython/OpenMP), contrast normalization, ZCA whitening, Eq. (1) k-means (full and
mini-batch), convolutional k-means, and the filter-redundancy measure.
"""
from .conv_kmeans import Matches, conv_kmeans, match_windows
from .filters import kmeans_filters
from .kmeans import KMeansResult, kmeans
from .layerwise import LayerReport, pretrain_conv_layers
from .metrics import mean_pairwise_correlation
from .patches import extract_patches, normalize_patches
from .preprocess import PatchPreprocessor
from .whitening import ZCAWhitening

__all__ = [
    "kmeans_filters", "pretrain_conv_layers", "LayerReport", "extract_patches", "normalize_patches",
    "ZCAWhitening", "PatchPreprocessor", "kmeans", "KMeansResult", "conv_kmeans", "match_windows", "Matches",
    "mean_pairwise_correlation",
]
