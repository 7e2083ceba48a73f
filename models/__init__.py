"""The Brevitas model zoo hwgen builds and tests: FINN's BNN-PYNQ networks and small MLPs."""
