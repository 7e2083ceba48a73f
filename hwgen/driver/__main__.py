"""On the board: `python -m hwgen.driver DEPLOY_DIR --exec-mode execute|throughput_test
[--input X.npy --output Y.npy] [--batch-size B] [--target pynq|sim]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hwgen.driver.accelerator import Accelerator, DriverError
from hwgen.errors import HwgenError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hwgen.driver", description=__doc__.splitlines()[0])
    p.add_argument("deploy_dir")
    p.add_argument("--exec-mode", choices=("execute", "throughput_test"), default="execute")
    p.add_argument("--input", help=".npy of what the ONNX model takes (execute)")
    p.add_argument("--output", help=".npy to write what the ONNX model returns (execute)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--target", choices=("pynq", "sim"), default="pynq")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a DMA transfer may take")
    args = p.parse_args(argv)
    try:
        if args.target == "sim":  # the simulated fabric: hwgen installed, not the driver copied to a board
            try:
                from hwgen.deploy.sim_pynq import simulated_accelerator
            except ImportError:
                raise DriverError("target 'sim' needs hwgen installed (its Verilator simulation)",
                                  where="--target") from None
            acc = simulated_accelerator(args.deploy_dir, args.batch_size, args.timeout)
        else:
            acc = Accelerator(args.deploy_dir, args.batch_size, args.timeout)
        if args.exec_mode == "throughput_test":
            print(json.dumps(acc.throughput_test(), indent=1))
            return 0
        if not args.input or not args.output:
            raise DriverError("execute needs --input X.npy and --output Y.npy", where="arguments")
        path = Path(args.input)
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DriverError(f"not a .npy array ({type(exc).__name__})", where=str(path)) from None
        np.save(args.output, acc.execute(x))
        print(f"ran {len(x)} frames; wrote {args.output}")
        return 0
    except HwgenError as exc:
        print(f"hwgen.driver: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
