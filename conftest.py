"""pytest setup shared by every test step (the unit tests have their own in tests/conftest.py).

nbval waits 5 s for a notebook cell's outputs once the kernel has finished it, then fails the cell
("Timeout of 5 seconds exceeded waiting for output"); on a loaded machine a kernel that has just
trained many runs can take longer to flush them. Cells keep nbval's own execution timeout.
"""
NBVAL_OUTPUT_TIMEOUT = 120  # seconds


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # an nbval notebook cell
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT
