"""The patch preprocessing of k-means filter learning: contrast normalization, then ZCA whitening.

It also answers "what is the response of centroid D_j to the preprocessed sub-patch at every
location of a window" without preprocessing every sub-patch: both steps are affine per
location, so they fold into a convolution with the filters F = D·M (M the symmetric ZCA matrix)
plus per-location mean/contrast maps computed by box filters (used by convolutional k-means).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..autograd import no_grad
from ..nn import functional as F
from ..tensor import Tensor
from ._common import positive_float
from .patches import default_contrast_eps, normalize_patches
from .whitening import ZCAWhitening


class PatchPreprocessor:
    """Contrast normalization (optional, ``eps_norm`` None = 10 % of the mean patch variance) followed
    by ZCA whitening (optional, ``eps_zca``); fitted once on raw patches, then applied to any."""

    def __init__(self, normalize: bool = True, eps_norm: Optional[float] = None, whiten: bool = True,
                 eps_zca: float = 0.1):
        self.normalize = bool(normalize)
        self.eps_norm = None if eps_norm is None else positive_float(eps_norm, "PatchPreprocessor", "eps_norm")
        self.zca = ZCAWhitening(eps_zca) if whiten else None
        self._fitted = False

    @property
    def fitted(self) -> bool:
        """True once fitted, or when there is nothing to fit (both steps off)."""
        return self._fitted or (not self.normalize and self.zca is None)

    def fit(self, raw: np.ndarray) -> "PatchPreprocessor":
        if self.normalize:
            if self.eps_norm is None:
                self.eps_norm = default_contrast_eps(raw)
            raw = normalize_patches(raw, self.eps_norm)
        if self.zca is not None:
            self.zca.fit(raw)
        self._fitted = True
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Preprocessed copy of raw (n, d) patches."""
        if not self.fitted:
            raise ValueError("PatchPreprocessor.transform: call fit(patches) first")
        x = normalize_patches(raw, self.eps_norm) if self.normalize else raw
        return self.zca.transform(x) if self.zca is not None else x

    def fold(self, centroids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(F, offset) with D_j·transform(x) = F_j·normalized(x) − offset_j for every patch x.

        F = D·M is centroid j expressed on (normalized) input patches; offset_j = F_j·mean.
        """
        if self.zca is None:
            return centroids, np.zeros(len(centroids), dtype=centroids.dtype)
        filters = centroids @ self.zca.matrix
        return filters, filters @ self.zca.mean

    def conv_responses(self, windows: np.ndarray, centroids: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
        """Responses (P, K, Ho, Wo) of the K centroids to the preprocessed kh×kw sub-patch at every
        valid location of each window (P, C, Wh, Ww); one conv2d for the centroids, two box filters
        for the local mean and contrast."""
        kh, kw = size
        p, c = windows.shape[:2]
        filters, offset = self.fold(centroids)
        weight = filters.reshape(len(filters), c, kh, kw)
        with no_grad():
            out = F.conv2d(Tensor(windows), Tensor(weight)).numpy()
            if self.normalize:
                d = c * kh * kw
                box = Tensor(np.ones((1, c, kh, kw), dtype=windows.dtype))
                mean = F.conv2d(Tensor(windows), box).numpy() / d
                sq = F.conv2d(Tensor(windows * windows), box).numpy() / d
                std = np.sqrt(np.maximum(sq - mean * mean, 0) + windows.dtype.type(self.eps_norm))
                out = (out - mean * filters.sum(axis=1)[None, :, None, None]) / std
        return out - offset[None, :, None, None]
