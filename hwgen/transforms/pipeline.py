"""The whole lowering, on one screen.

Each list is applied in order, each rewrite to a fixed point; after each list a check asserts what
the graph may now contain. `hwgen.build` runs these as steps and saves an ONNX checkpoint after each.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames, SortGraph
from qonnx.transformation.infer_shapes import InferShapes

from hwgen.errors import HwgenError
from hwgen.transforms.streamline.absorb_affine_into_multithreshold import AbsorbAffineIntoMultiThreshold
from hwgen.transforms.streamline.convert_bipolar_matmul_to_xnor_popcount import ConvertBipolarMatMulToXnorPopcount
from hwgen.transforms.streamline.convert_gemm_to_matmul import ConvertGemmToMatMul
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import FoldElementwiseChainIntoThresholds
from hwgen.transforms.streamline.fold_weight_quant_into_matmul import FoldWeightQuantIntoMatMul
from hwgen.transforms.streamline.move_scalar_mul_past_matmul import MoveScalarMulPastMatMul
from hwgen.transforms.streamline.remove_identity_ops import RemoveIdentityOps
from hwgen.transforms.streamline.split_quant_scale import SplitQuantScale

#: float QONNX graph -> integer graph (MatMul / XnorPopcountMatMul / MultiThreshold) + host ops
STREAMLINE: list[Transformation] = [
    RemoveIdentityOps(),
    ConvertGemmToMatMul(),
    FoldWeightQuantIntoMatMul(),
    SplitQuantScale(),
    MoveScalarMulPastMatMul(),
    ConvertBipolarMatMulToXnorPopcount(),
    FoldElementwiseChainIntoThresholds(),
    AbsorbAffineIntoMultiThreshold(),
    RemoveIdentityOps(),
]


def apply_all(model: ModelWrapper, transforms: list[Transformation]) -> ModelWrapper:
    """Apply each transform in turn (each to its fixed point), keeping names and order tidy."""
    for t in transforms:
        model = model.transform(t, make_deepcopy=False, cleanup=False)
        model = model.transform(SortGraph(), make_deepcopy=False, cleanup=False)
    model = model.transform(InferShapes(), make_deepcopy=False, cleanup=False)
    return model


def check_only(model: ModelWrapper, allowed: set[str], stage: str) -> None:
    """After `stage`, every node's op must be in `allowed`."""
    for node in model.graph.node:
        if node.op_type not in allowed:
            raise HwgenError(f"op '{node.op_type}' is left after {stage}", where=f"node {node.name}")
