"""Ingest: bring old and foreign exports to the one form the streamliner expects, one rewrite per
file. Brevitas' TorchScript and dynamo exports, the QONNX model zoo's IR 6 / opset 9 files, FINN-ONNX
graphs and early Brevitas exports all leave this stage as the same kind of graph: one opset,
static shapes, no shape arithmetic, QONNX domains, channels on axis 1, integer datatypes annotated."""
