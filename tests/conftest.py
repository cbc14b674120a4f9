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
