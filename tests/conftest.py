from pathlib import Path

import pytest
import torch

from probpose.data import bundled

# One torch thread for the whole suite: the tests' tensors are small, and on a machine that is busy
# with other work (CI runners, laptops) several OpenMP threads wait on each other and make some
# tests 10x slower. Timings are measured in benchmarks/, never here.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smplx_files() -> dict[str, Path]:
    return {p.name: p for p in bundled("smplx")}


@pytest.fixture(scope="session")
def zebra_files() -> dict[str, Path]:
    return {p.name: p for p in bundled("zebra")}
