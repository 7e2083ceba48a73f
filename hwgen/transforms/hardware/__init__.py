"""Lowering of the integer graph to hardware-unit nodes, folding, and stream plumbing."""
