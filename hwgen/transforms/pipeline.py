"""The whole lowering, on one screen.

    STREAMLINE   float QONNX -> integer graph (MatMul / XnorPopcountMatMul / MultiThreshold)
    (partition)  host pre | accelerator | host post        (hwgen.transforms.partition)
    TO_HARDWARE  integer graph -> hardware-unit nodes
    FOLD         PE / SIMD per unit
    PLUMBING     width converters and FIFOs on the edges

Each list is applied in order, each rewrite to its fixed point; after a stage, `check_only` asserts
what the graph may now contain. `hwgen.build` runs the stages as steps with a checkpoint after each.
"""

from __future__ import annotations

import copy

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_shapes import InferShapes

from hwgen.config import BuildConfig
from hwgen.errors import HwgenError
from hwgen.transforms.hardware.absorb_flatten_into_matmul import AbsorbFlattenIntoMatMul
from hwgen.transforms.hardware.apply_folding_config import ApplyFoldingConfig
from hwgen.transforms.hardware.infer_convolution import InferConvolution
from hwgen.transforms.hardware.infer_maxpool import InferMaxPool
from hwgen.transforms.hardware.infer_label_select import InferLabelSelect
from hwgen.transforms.hardware.infer_mvu import InferMVU
from hwgen.transforms.hardware.infer_thresholding import InferThresholding
from hwgen.transforms.hardware.insert_stream_plumbing import InsertDataWidthConverters, InsertFifos
from hwgen.transforms.hardware.remove_layout_transposes import RemoveLayoutTransposes
from hwgen.transforms.hardware.set_folding import SetFolding
from hwgen.transforms.streamline.absorb_affine_into_multithreshold import AbsorbAffineIntoMultiThreshold
from hwgen.transforms.streamline.absorb_monotonic_chain_into_topk import AbsorbMonotonicChainIntoTopK
from hwgen.transforms.streamline.convert_bipolar_matmul_to_xnor_popcount import ConvertBipolarMatMulToXnorPopcount
from hwgen.transforms.streamline.convert_gemm_to_matmul import ConvertGemmToMatMul
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import FoldElementwiseChainIntoThresholds
from hwgen.transforms.streamline.fold_weight_quant_into_matmul import FoldWeightQuantIntoMatMul
from hwgen.transforms.streamline.move_scalar_mul_past_matmul import MoveScalarMulPastMatMul
from hwgen.transforms.streamline.remove_identity_ops import RemoveIdentityOps
from hwgen.transforms.streamline.split_quant_scale import SplitQuantScale

STREAMLINE: list[Transformation] = [
    RemoveIdentityOps(),
    ConvertGemmToMatMul(),
    FoldWeightQuantIntoMatMul(),
    SplitQuantScale(),
    MoveScalarMulPastMatMul(),
    ConvertBipolarMatMulToXnorPopcount(),
    FoldElementwiseChainIntoThresholds(),
    AbsorbAffineIntoMultiThreshold(),
    AbsorbMonotonicChainIntoTopK(),
    RemoveIdentityOps(),
]

TO_HARDWARE: list[Transformation] = [
    AbsorbFlattenIntoMatMul(),
    InferConvolution(),
    InferMaxPool(),
    InferMVU(),
    InferThresholding(),
    InferLabelSelect(),
    RemoveLayoutTransposes(),
]
HARDWARE_OPS = {"MVU", "Thresholding", "LabelSelect", "SlidingWindow", "MaxPool"}


def FOLD(cfg: BuildConfig) -> list[Transformation]:  # noqa: N802 - a stage list, like the others
    """Automatic folding for the target, then the hand folding on top of it."""
    steps: list[Transformation] = [SetFolding(cfg.cycles_target)]
    if cfg.folding is not None:
        steps.append(ApplyFoldingConfig(cfg.folding))
    return steps


def PLUMBING(cfg: BuildConfig) -> list[Transformation]:  # noqa: N802
    return [InsertDataWidthConverters(), InsertFifos(cfg.fifo_depth)]


def apply_all(model: ModelWrapper, transforms: list[Transformation]) -> ModelWrapper:
    """Apply each transform in turn (each to its fixed point), keeping the node list sorted.

    Works on a copy: the caller's model is left as it was."""
    model = ModelWrapper(copy.deepcopy(model.model))
    for t in transforms:
        model = model.transform(t, make_deepcopy=False, cleanup=False)
        model = model.transform(SortGraph(), make_deepcopy=False, cleanup=False)
    return model.transform(InferShapes(), make_deepcopy=False, cleanup=False)


def check_only(model: ModelWrapper, allowed: set[str], stage: str) -> None:
    """After `stage`, every node's op must be in `allowed`."""
    for node in model.graph.node:
        if node.op_type not in allowed:
            raise HwgenError(f"op '{node.op_type}' has no hardware unit (left after {stage})",
                             where=f"node {node.name}")
