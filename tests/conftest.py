import os

# Nothing in the suite may wait on the network or on a hub. (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is
# deliberately not set here: the end-to-end tests prove the plugin sets it for the user.)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
