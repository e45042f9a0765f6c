from pathlib import Path

import pytest

from probpose.data import bundled

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
