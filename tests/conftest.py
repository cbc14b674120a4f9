import os

# Nothing in the suite may wait on the network or on a hub. (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is
# deliberately not set here: the end-to-end tests prove the plugin sets it for the user.)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

try:  # property-based tests: random examples on a developer's machine, a fixed sequence in CI
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:
    pass


import pytest  # noqa: E402
import torch  # noqa: E402

#: every device test runs on the CPU, and on CUDA when there is one (skipped with the reason otherwise)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="torch sees no CUDA device"))]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)
