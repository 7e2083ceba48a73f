"""The pipeline's contracts: every rewrite reports `changed` truthfully and stops at a fixed point,
each stage leaves only what it may, and the one registry of hardware ops is what every part uses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.errors import HwgenError
from hwgen.frontend import export_brevitas
from hwgen.ops import COMPUTE_OPS, FOLDING, HARDWARE_OPS, PLUMBING_OPS
from hwgen.ops.kinds import UNITS
from hwgen.transforms.pipeline import FOLD, PLUMBING, STREAMLINE, TO_HARDWARE, check_stage
from hwgen.models.convnet import BnnConvNet, ConvSpec, randomize_conv


def _copy(model: ModelWrapper) -> ModelWrapper:
    return ModelWrapper(onnx.load_from_string(model.model.SerializeToString()))


@pytest.fixture(scope="module")
def conv_build(tmp_path_factory):
    """A small padded conv net with max pooling and a dense head, built (no simulation)."""
    net = randomize_conv(BnnConvNet(1, (12, 12), [ConvSpec(8, padding=1, pool=True), ConvSpec(8)]), seed=3)
    path = tmp_path_factory.mktemp("conv") / "convnet.onnx"
    export_brevitas(net, (1, 1, 12, 12)).save(str(path))
    out = path.parent / "build"
    build(path, out, BuildConfig(target_cycles=2048))
    return out


STAGES = [("01_ingest", STREAMLINE), ("03_partition", TO_HARDWARE),
          ("04_to_hardware", FOLD(BuildConfig(target_cycles=2048))), ("05_fold", PLUMBING(BuildConfig()))]


@pytest.mark.parametrize("checkpoint,transforms", STAGES, ids=[s[0] for s in STAGES])
def test_rewrites_report_change_truthfully(conv_build, checkpoint, transforms):
    """Applied one pass at a time from the stage's input: a pass that reports no change changed
    nothing, a pass that reports a change changed something, and every rewrite stops."""
    model = ModelWrapper(str(conv_build / "graphs" / f"{checkpoint}.onnx"))
    for transform in transforms:
        for _ in range(100):
            before = model.model.SerializeToString()
            model, changed = transform.apply(_copy(model))
            after = model.model.SerializeToString()
            assert changed == (after != before), f"{type(transform).__name__} reported changed={changed}"
            if not changed:
                break
        else:
            pytest.fail(f"{type(transform).__name__} did not stop")


def test_every_stage_check_holds_on_its_checkpoint(conv_build):
    for stage, checkpoint in [("streamline", "02_streamline"), ("partition", "03_partition"),
                              ("to_hardware", "04_to_hardware"), ("fold", "05_fold"), ("plumbing", "06_plumbing")]:
        check_stage(ModelWrapper(str(conv_build / "graphs" / f"{checkpoint}.onnx")), stage)


def test_stage_check_names_the_node_that_should_not_be_there(conv_build):
    model = ModelWrapper(str(conv_build / "graphs" / "04_to_hardware.onnx"))
    first = model.graph.node[0]
    first.op_type, first.domain, first.name = "Relu", "", "leftover_relu"
    with pytest.raises(HwgenError, match="node leftover_relu.*'Relu' has no hardware unit"):
        check_stage(model, "to_hardware")
    streamlined = ModelWrapper(str(conv_build / "graphs" / "02_streamline.onnx"))
    streamlined.graph.node[0].op_type = "Gemm"
    with pytest.raises(HwgenError, match="Gemm left after streamline"):
        check_stage(streamlined, "streamline")


def test_one_registry_of_hardware_ops():
    names = {unit.__name__ for unit in UNITS}
    assert set(HARDWARE_OPS) == names
    assert COMPUTE_OPS | PLUMBING_OPS == names and not COMPUTE_OPS & PLUMBING_OPS
    assert {"StreamingFifo", "DataWidthConverter"} <= PLUMBING_OPS
    for op, knobs in FOLDING.items():
        cls = HARDWARE_OPS[op].unit_cls
        fields = cls.__dataclass_fields__
        # a dimension is a parameter or one derived from them (a window's pieces)
        assert all(knob in fields and (dim in fields or isinstance(getattr(cls, dim, None), property))
                   for knob, dim in knobs), op


def test_report_names_modules_that_exist(conv_build):
    import json
    modules = json.loads((conv_build / "accelerator.json").read_text())["modules"]
    layers = [layer["name"] for layer in json.loads((conv_build / "report.json").read_text())["layers"]]
    assert sorted(modules) == sorted(layers)
    assert all((conv_build / "rtl" / f"{m}.v").is_file() for m in modules.values())
    assert np.unique(list(modules.values())).size == len(modules)
