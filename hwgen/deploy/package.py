"""`OUT/deploy/`: everything a board needs to run one build.

    accelerator.json   the description the driver reads (`DEPLOY_FORMAT`): the board, part and
                       fabric clock, the DMA's name, both streams (shape, datatype, elements and
                       bytes per beat, beats per frame, the DMA's padded bytes per beat), the
                       model's input and output shapes, the host's float ends as numpy programs
                       (`host_pre`, `host_post`, checked against QONNX execution here), the names
                       of the bitfile and hardware handoff, a digest of the RTL (and weights), and
                       for a build whose weights are loaded after reset, `weights` (file, beats,
                       the second DMA's name)
    weights.bin        that build's weight stream (`OUT/rtl/weights.bin`), which the driver
                       sends once when it opens the accelerator
    dram.bin           for a build that reads DRAM (`--weight-memory dram`), the DRAM image
                       (`OUT/rtl/dram.bin`); `dram` in the description gives its file, bytes, the
                       accelerator's IP name and the offset of its DRAM_BASE register: the driver
                       allocates the image in contiguous memory, fills it once and writes its
                       physical address there (`hwgen.deploy.control`)
    hwgen/             the driver (`hwgen/driver/`, `hwgen/errors.py`): numpy and pynq only, run
                       as `python -m hwgen.driver .` from the deploy folder
    accelerator.bit / accelerator.hwh    once the Vivado flow has run

The driver is copied as it is installed, not generated: one tested class for every build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

from hwgen.deploy.boards import Board
from hwgen.deploy.host_program import check_program, host_program, post_samples, pre_samples
from hwgen.driver.accelerator import DEPLOY_FORMAT
from hwgen.driver.wire import dma_bytes
from hwgen.host import load_build_graph
from hwgen.deploy.control import DRAM_BASE_OFFSET
from hwgen.rtl.axi import DRAM_FILE
from hwgen.units.weight_stream import WEIGHTS_FILE

BITFILE, HWH = "accelerator.bit", "accelerator.hwh"
#: the AXI DMA's instance name in the block design, as PYNQ's overlay names it
DMA_NAME = "axi_dma_0"
#: the second DMA, memory to stream only, that sends loaded weights (`s_axis_weights`)
WEIGHTS_DMA_NAME = "axi_dma_weights"
#: the accelerator's instance name in the block design: PYNQ's overlay attribute of its registers
ACCELERATOR_NAME = "accelerator"


def rtl_digest(rtl_dir: Path) -> str:
    """SHA-256 over the Verilog of a build, its weight stream and its DRAM image (file names and
    contents, in name order): two builds with loaded or DRAM weights can share their Verilog."""
    h = hashlib.sha256()
    for path in sorted([*Path(rtl_dir).glob("*.v"), *Path(rtl_dir).glob(WEIGHTS_FILE), *Path(rtl_dir).glob(DRAM_FILE)]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def write_deploy(build_dir: Path, board: Board) -> Path:
    """Write `build_dir/deploy/` for `board` from the finished build in `build_dir`."""
    build_dir = Path(build_dir)
    info = json.loads((build_dir / "accelerator.json").read_text())
    pre_graph = load_build_graph(build_dir / "host_pre.onnx")
    post_graph = load_build_graph(build_dir / "host_post.onnx")
    pre = host_program(pre_graph, "host_pre.onnx")
    post = host_program(post_graph, "host_post.onnx")
    check_program(pre, pre_graph, pre_samples(info["model_input_shape"], pre, info.get("model_input_dtype", "FLOAT32")),
                  "host_pre.onnx")
    check_program(post, post_graph, post_samples(info["output"]["shape"], info["output"]["dtype"]), "host_post.onnx")
    streams = {}
    for key in ("input", "output"):
        s = info[key]
        streams[key] = {k: s[k] for k in ("shape", "dtype", "elems_per_beat", "beats_per_frame", "width",
                                          "bytes_per_beat")} | {"dma_bytes_per_beat": dma_bytes(s["width"])}
    description = {
        "format": DEPLOY_FORMAT, "top": info["top"], "board": board.name, "part": board.part,
        "fclk_mhz": board.fclk_mhz, "dma": DMA_NAME, "dma_max_bytes": board.max_transfer_bytes,
        "bitfile": BITFILE, "hwh": HWH,
        "model_input_shape": info["model_input_shape"], "model_output_shape": info["model_output_shape"],
        "model_input_dtype": info.get("model_input_dtype", "FLOAT32"),
        "input": streams["input"], "output": streams["output"],
        "host_pre": pre, "host_post": post, "rtl_sha256": rtl_digest(build_dir / "rtl"),
    }
    if info.get("weight_beats"):
        description["weights"] = {"file": WEIGHTS_FILE, "beats": int(info["weight_beats"]), "dma": WEIGHTS_DMA_NAME}
    if info.get("dram_bytes"):
        description["dram"] = {"file": DRAM_FILE, "bytes": int(info["dram_bytes"]), "ip": ACCELERATOR_NAME,
                               "base_register": DRAM_BASE_OFFSET, "align": int(info.get("dram_align") or 4096)}
    deploy = build_dir / "deploy"
    if deploy.exists():
        shutil.rmtree(deploy)
    (deploy / "hwgen" / "driver").mkdir(parents=True)
    (deploy / "accelerator.json").write_text(json.dumps(description, indent=1) + "\n")
    if "weights" in description:
        shutil.copyfile(build_dir / "rtl" / WEIGHTS_FILE, deploy / WEIGHTS_FILE)
    if "dram" in description:
        shutil.copyfile(build_dir / "rtl" / DRAM_FILE, deploy / DRAM_FILE)
    package = resources.files("hwgen")
    for name in ("__init__.py", "errors.py"):
        (deploy / "hwgen" / name).write_text(package.joinpath(name).read_text())
    for entry in package.joinpath("driver").iterdir():
        if entry.name.endswith(".py"):
            (deploy / "hwgen" / "driver" / entry.name).write_text(entry.read_text())
    return deploy
