"""Shared fixtures: every test starts from seeded RNGs."""

import os
import random

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Triton fixes at import time (of triton.language, which e3nn pulls in through torch)
# whether kernels are interpreted: without a GPU, the Triton kernel tests run in its CPU
# interpreter; with one, compiled on CUDA tensors.
os.environ.setdefault("TRITON_INTERPRET", "0" if torch.cuda.is_available() else "1")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
