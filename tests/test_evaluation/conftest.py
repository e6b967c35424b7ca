"""One torch thread for these tests (see ``tiny_setup.torch_threads``)."""
import pytest

from tests.test_evaluation.tiny_setup import torch_threads


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1):
        yield
