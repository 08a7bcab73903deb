"Every library notebook runs top to bottom: its examples are its tests (nbdev_test, in-process, one test each)."
import os
from pathlib import Path
import pytest
from nbdev.test import test_nb as run_notebook_tests

NBS = sorted((Path(__file__).resolve().parents[1] / "nbs").glob("[0-9]*.ipynb"))

def test_notebooks_found():
    assert len(NBS) >= 8, NBS

@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    ok, secs = run_notebook_tests(nb, skip_flags=["slow", "gpu"], showerr=True)
    assert ok, f"{nb.name} failed (see the traceback above)"
