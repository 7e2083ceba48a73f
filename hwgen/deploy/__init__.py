"""Deployment to Zynq boards: the boards as data (`boards/*.toml`), the deploy folder a board needs
(`package`), and a PYNQ-shaped stand-in backed by Verilator that runs the driver in CI (`sim_pynq`)."""
