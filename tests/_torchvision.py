"""torchvision for cross-checks: imported with its compiled-op registrations stubbed (they do not
load against the CPU torch of the test environment); tests using it skip when it is absent."""
import sys
import types

import pytest


def import_torchvision():
    pytest.importorskip("torch")
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    return pytest.importorskip("torchvision")
