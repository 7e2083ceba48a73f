"""The board driver (numpy and, on a board, `pynq` only): `Accelerator(deploy_dir)`.

This package and `hwgen/errors.py` are copied into every deploy folder, so that a board runs
`python -m hwgen.driver DEPLOY_DIR ...` from it without installing hwgen.
"""

from hwgen.driver.accelerator import Accelerator, DriverError

__all__ = ["Accelerator", "DriverError"]
