import os
from pathlib import Path

import pytest
import torch

from probpose.data import bundled

# One torch thread for the whole suite: the tests' tensors are small, and on a machine that is busy
# with other work (CI runners, laptops) several OpenMP threads wait on each other and make some
# tests 10x slower. Timings are measured in benchmarks/, never here. The environment carries the
# same to the commands the tests start (the README's examples, the docs build, the CLI), which
# otherwise take every core each while pytest-xdist's workers run beside them: measured on the
# 2-core CI machine, the README's examples took 281 s inside the suite against 147 s alone,
# one thread or two. A value already set (to measure something else) is kept.
torch.set_num_threads(1)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

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
