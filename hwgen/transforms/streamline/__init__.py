"""Streamlining: from a float QONNX graph with quantizers to an integer graph of
`MatMul` / `XnorPopcountMatMul` / `MultiThreshold`, one rewrite per file."""
