"""Hardware units: one file per unit, each a parameter dataclass, a numpy reference, an Amaranth
component and its cycle and resource estimates (see `hwgen.units.base.Unit`)."""
