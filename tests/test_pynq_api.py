"""The driver's calls into `pynq`, held against the real package and against the simulated fabric.

The driver runs in CI against `hwgen.deploy.sim_pynq`, a PYNQ-shaped stand-in; a stand-in that drifts
from PYNQ would let a driver pass here and fail on the board. So this test installs `pynq` from PyPI
into a virtual environment of its own (it pins numpy 1.26, which this project's does not take;
it installs and imports on x86 without a board), and checks that every call the driver makes binds to
the real signature (`inspect.Signature.bind` with the driver's arguments), that the attributes it reads
are there, and that the stand-in takes the same calls. The list of calls is held to the driver's
source: a call the driver makes that is not listed fails the test.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwgen.deploy import sim_pynq
from hwgen.driver import accelerator

#: the PYNQ the driver is checked against (the current release; 3.x has the same calls)
PYNQ_REQUIREMENT = "pynq==4.0.0"

#: every call the driver makes into pynq: name -> (object in pynq, member or None, arguments as the
#: driver gives them (positional, keyword), or "attribute" for what it reads)
DRIVER_CALLS: dict[str, tuple[str, str | None, object]] = {
    "Overlay": ("pynq.Overlay", None, (["accelerator.bit"], {})),
    "allocate": ("pynq.allocate", None, ([], {"shape": [4, 8], "dtype": "uint8"})),
    "transfer": ("pynq.lib.dma._SDMAChannel", "transfer", (["self", "buffer"], {})),
    "idle": ("pynq.lib.dma._SDMAChannel", "idle", "attribute"),
    "write": ("pynq.DefaultIP", "write", (["self", 0, 0x1800_0000], {})),
    "read": ("pynq.DefaultIP", "read", (["self", 0], {})),
    "physical_address": ("pynq.buffer.PynqBuffer", "physical_address", "attribute"),
    "sync_to_device": ("pynq.buffer.PynqBuffer", "sync_to_device", (["self"], {})),
    "sync_from_device": ("pynq.buffer.PynqBuffer", "sync_from_device", (["self"], {})),
}

#: runs inside the pynq environment: each call bound to the real signature, as JSON
_PROBE = r"""
import importlib, inspect, json, sys
calls = json.loads(sys.argv[1])
out = {}
for name, (path, member, how) in calls.items():
    module, _, attr = path.rpartition(".")
    obj = getattr(importlib.import_module(module), attr)
    if member is not None:
        obj = getattr(obj, member, None)
    if how == "attribute":
        out[name] = {"present": obj is not None}
        continue
    target = obj.__init__ if inspect.isclass(obj) else obj
    args, kwargs = how
    try:
        inspect.signature(target).bind(*(["self"] if inspect.isclass(obj) else []), *args, **kwargs)
        out[name] = {"binds": True, "signature": str(inspect.signature(target))}
    except TypeError as exc:
        out[name] = {"binds": False, "signature": str(inspect.signature(target)), "error": str(exc)}
import pynq.lib.dma
source = inspect.getsource(pynq.lib.dma.DMA)
out["channels"] = {"present": "self.sendchannel" in source and "self.recvchannel" in source}
out["version"] = pynq.__version__
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def real_pynq(tmp_path_factory) -> dict:
    env = tmp_path_factory.mktemp("pynq") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", PYNQ_REQUIREMENT],
                             capture_output=True, text=True)
    assert install.returncode == 0, f"pip install {PYNQ_REQUIREMENT} failed: {install.stderr.strip()[-500:]}"
    probe = subprocess.run([str(python), "-c", _PROBE, json.dumps(DRIVER_CALLS)], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-2000:]
    return json.loads(probe.stdout)


def test_the_list_is_every_pynq_call_of_the_driver():
    source = inspect.getsource(accelerator)
    assert set(re.findall(r"\bpynq\.(\w+)", source)) == {"Overlay", "allocate"}
    for name in DRIVER_CALLS:
        assert re.search(rf"\b{name}\b", source), name
    # the buffer's cache calls go by PYNQ's current names first
    assert '"sync_to_device", "flush"' in source and '"sync_from_device", "invalidate"' in source


def test_every_call_of_the_driver_binds_to_the_real_pynq(real_pynq):
    assert real_pynq.pop("version") == PYNQ_REQUIREMENT.split("==")[1]
    wrong = {name: entry for name, entry in real_pynq.items() if not entry.get("binds", entry.get("present"))}
    assert wrong == {}


def test_the_stand_in_takes_the_same_calls(tiny_mlp_onnx):
    """The simulated fabric's objects, called as the driver calls PYNQ's."""
    overlay = object.__new__(sim_pynq.Overlay)  # its calls, without a build behind it
    overlay.buffers = []
    calls = {name: how for name, (_, _, how) in DRIVER_CALLS.items()}
    args, kwargs = calls["allocate"]
    buf = overlay.allocate(*args, **{**kwargs, "shape": tuple(kwargs["shape"])})
    assert buf.shape == (4, 8) and buf.dtype == np.uint8 and buf.physical_address % 4096 == 0
    channel = sim_pynq._Channel("MM2S")
    inspect.signature(channel.transfer).bind(*calls["transfer"][0][1:])
    assert channel.idle is True
    registers = sim_pynq._Registers(0)
    inspect.signature(registers.write).bind(*calls["write"][0][1:])
    inspect.signature(registers.read).bind(*calls["read"][0][1:])
    registers.write(0, 0x1800_0000)
    assert registers.read(0) == 0x1800_0000 == registers.dram_base
