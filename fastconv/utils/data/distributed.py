"""``torch.utils.data.distributed``'s name for fastconv's ``DistributedSampler`` (``fastconv.distributed``)."""
from ...distributed.sampler import DistributedSampler

__all__ = ["DistributedSampler"]
