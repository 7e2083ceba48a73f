"""The Vivado flow of `hwgen build --board`, checked structurally (Vivado is not on these machines):
the Tcl runs in `tclsh` with Vivado's commands recorded, every file it names exists, the IP's
ports are the shell's Verilog ports with the DMA's stream widths, the shell's TLAST marks each
frame's last beat (Amaranth simulation), and Yosys synthesizes the shell with the accelerator for
the board's part. `--bitstream` without Vivado is one line naming the script, exit 2, with the
build complete. What is not run: Vivado itself, hence no bitstream and no board.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from hwgen.builder import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.deploy.boards import BOARDS, lookup_board
from hwgen.deploy.checks import run_tcl_skeleton, shell_ports, synthesize_shell
from hwgen.deploy.shell import FrameEnd

#: the Vivado commands the flow may use (a misspelt one would pass tclsh but not Vivado)
VIVADO_COMMANDS = {
    "create_project", "add_files", "current_fileset", "set_property", "update_compile_order", "ipx::package_project",
    "ipx::infer_bus_interfaces", "ipx::associate_bus_interfaces", "ipx::current_core", "ipx::update_checksums",
    "ipx::save_core", "close_project", "get_board_parts", "current_project", "update_ip_catalog",
    "create_bd_design", "create_bd_cell", "get_ipdefs", "apply_bd_automation", "get_bd_cells", "get_bd_intf_pins",
    "connect_bd_intf_net", "get_bd_pins", "connect_bd_net", "assign_bd_address", "validate_bd_design",
    "save_bd_design", "make_wrapper", "get_files", "launch_runs", "wait_on_run", "get_property", "get_runs",
    "glob", "file",
}


@pytest.fixture(scope="module")
def flows(tiny_mlp_onnx, tmp_path_factory, verilator_cache) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("flows")
    out = {}
    for name in BOARDS:
        out[name] = root / name
        build(tiny_mlp_onnx, out[name], BuildConfig(board=name, cache_dir=verilator_cache))
    return out


def _dict(call: list[str]) -> dict[str, str]:
    words = call[2].split()
    return dict(zip(words[::2], words[1::2]))


@pytest.mark.parametrize("board", list(BOARDS))
def test_flow_structure(board, flows):
    out = flows[board]
    b = lookup_board(board)
    calls = run_tcl_skeleton(out / "vivado" / "build.tcl")
    assert {c[0] for c in calls} <= VIVADO_COMMANDS
    # every file it reads exists; the bitstream and hardware handoff go into the deploy folder
    added = [Path(p) for c in calls if c[0] == "add_files" and c[1] == "-norecurse" and ".v" in c[2]
             for p in c[2].split()]
    assert added and all(p.is_file() for p in added)
    assert {p.resolve() for p in added} == {p.resolve() for p in (out / "rtl").glob("*.v")} | \
        {(out / "vivado" / "src" / "hwgen_dma_shell.v").resolve()}
    copies = [Path(c[-1]).resolve() for c in calls if c[:2] == ["file", "copy"]]
    assert copies == [(out / "deploy" / "accelerator.bit").resolve(), (out / "deploy" / "accelerator.hwh").resolve()]
    # the part, the PS, its clock, the HP port
    assert [c[-1] for c in calls if c[0] == "create_project"] == [b.part, b.part]
    ps_config = next(_dict(c) for c in calls if c[0] == "set_property" and c[1] == "-dict" and
                     ("CONFIG.PCW_" in c[2] or "CONFIG.PSU_" in c[2]))
    clock_key = "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ" if b.ps == "ps7" else "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"
    assert float(ps_config[clock_key]) == b.fclk_mhz
    assert any(f'Slave "/ps/{b.hp_port}"' in " ".join(c) for c in calls if c[0] == "apply_bd_automation")
    # the IP's ports: the shell's Verilog, tdata as wide as the DMA's streams
    ports = shell_ports((out / "vivado" / "src" / "hwgen_dma_shell.v").read_text())
    assert set(ports) == {"ap_clk", "ap_rst_n", "s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast",
                          "m_axis_tdata", "m_axis_tvalid", "m_axis_tready", "m_axis_tlast", "m_axis_tkeep"}
    dma = next(_dict(c) for c in calls if c[0] == "set_property" and "c_include_sg" in c[2])
    assert int(dma["CONFIG.c_m_axis_mm2s_tdata_width"]) == ports["s_axis_tdata"][1]
    assert int(dma["CONFIG.c_s_axis_s2mm_tdata_width"]) == ports["m_axis_tdata"][1]
    for width in (ports["s_axis_tdata"][1], ports["m_axis_tdata"][1]):
        assert width % 8 == 0 and (width // 8) & (width // 8 - 1) == 0  # 8 x 2^k bits
    deploy = json.loads((out / "deploy" / "accelerator.json").read_text())
    assert deploy["input"]["dma_bytes_per_beat"] * 8 == ports["s_axis_tdata"][1]
    assert (out / "vivado" / "build.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("board", ["pynq-z2", pytest.param("kv260", marks=pytest.mark.slow),
                                   pytest.param("ultra96-v2", marks=pytest.mark.slow)])
def test_shell_with_accelerator_synthesizes_and_fits(board, flows):
    result = synthesize_shell(flows[board], lookup_board(board))
    assert result["fits"] and result["luts"] > 0


@pytest.mark.parametrize("beats", [1, 3])
def test_tlast_on_each_frames_last_beat(beats):
    dut = FrameEnd(beats)
    seen: list[int] = []

    async def bench(ctx):
        for cycle in range(10):
            taken = cycle % 3 != 1  # beats taken with gaps
            ctx.set(dut.taken, taken)
            if taken:
                seen.append(ctx.get(dut.last))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [int((i + 1) % beats == 0) for i in range(len(seen))]


def test_bitstream_without_vivado_is_one_line(tiny_mlp_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    out = tmp_path / "build"
    code = main(["build", str(tiny_mlp_onnx), "-o", str(out), "--board", "pynq-z2", "--bitstream"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"vivado is not on PATH: run {out / 'vivado' / 'build.sh'} on a machine with Vivado" in err
    assert (out / "report.json").is_file() and (out / "deploy" / "accelerator.json").is_file()
    assert main(["build", str(tiny_mlp_onnx), "-o", str(tmp_path / "b2"), "--bitstream"]) == 2
    assert "--bitstream: needs --board" in capsys.readouterr().err


# -- builds that read DRAM: read masters on the board's DRAM ports, the control registers on its master

DRAM_COMMANDS = {"ipx::add_memory_map", "ipx::get_bus_interfaces", "ipx::add_address_block", "ipx::get_memory_maps",
                 "ipx::get_address_blocks"}


@pytest.fixture(scope="module")
def dram_flows(tmp_path_factory, verilator_cache) -> dict[str, Path]:
    """TFC-W1A1 with every weight in DRAM, built for each board (64 cycles per frame: four
    DramMVUs, on a ps8 board folded to whole 128-bit bus words)."""
    from hwgen.frontend import export_brevitas
    from hwgen.models.bnn_pynq import bnn_pynq_model

    root = tmp_path_factory.mktemp("dram_flows")
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(root / "tfc.onnx"))
    out = {}
    for name in BOARDS:
        out[name] = root / name
        build(root / "tfc.onnx", out[name], BuildConfig(target_cycles=64, weight_memory="dram", board=name,
                                                        fifo_sizing="modelled", cache_dir=verilator_cache))
    return out


@pytest.mark.parametrize("board", list(BOARDS))
def test_dram_flow_structure(board, dram_flows):
    """Each read master on a DRAM port of its own, enabled in the PS at the HP width; the control
    registers on the PS's master with a 4 KB memory map; the shell's ports as wide as the bus;
    the DRAM image in the deploy folder with what the driver needs to place it."""
    out, b = dram_flows[board], lookup_board(board)
    info = json.loads((out / "accelerator.json").read_text())
    masters = info["dram_masters"]
    assert masters == min(3, len(b.dram_ports)) and info["dram_bits"] == b.hp_data_width
    calls = run_tcl_skeleton(out / "vivado" / "build.tcl")
    assert {c[0] for c in calls} <= VIVADO_COMMANDS | DRAM_COMMANDS
    # each automation with the pins it is given (Tcl records the inner get_bd_intf_pins first)
    automation = [(" ".join(c[1:]), calls[i - 1][1]) for i, c in enumerate(calls)
                  if c[0] == "apply_bd_automation" and calls[i - 1][0] == "get_bd_intf_pins"]
    for k, port in enumerate(b.dram_ports[:masters]):
        assert [pins for config, pins in automation if f'Slave "/ps/{port}"' in config] == [f"accelerator/m_axi_dram{k}"]
    assert [config for config, pins in automation if pins == "accelerator/s_axi_control"] == \
        [f'-rule xilinx.com:bd_rule:axi4 -config Master "/ps/{"M_AXI_GP0" if b.ps == "ps7" else "M_AXI_HPM0_FPD"}" Clk "Auto" ']
    ps_config = next(_dict(c) for c in calls if c[0] == "set_property" and c[1] == "-dict" and
                     ("CONFIG.PCW_" in c[2] or "CONFIG.PSU_" in c[2]))
    for port in b.dram_ports[:masters]:
        if b.ps == "ps7":
            assert ps_config[f"CONFIG.PCW_USE_{port}"] == "1"
            assert int(ps_config[f"CONFIG.PCW_{port}_DATA_WIDTH"]) == b.hp_data_width
        else:  # S_AXI_HPn_FPD is the PS8's slave S_AXI_GP(n+2)
            gp = int(port[len("S_AXI_HP")]) + 2
            assert ps_config[f"CONFIG.PSU__USE__S_AXI_GP{gp}"] == "1"
            assert int(ps_config[f"CONFIG.PSU__SAXIGP{gp}__DATA_WIDTH"]) == b.hp_data_width
    associated = {c[2] for c in calls if c[0] == "ipx::associate_bus_interfaces"}
    assert {"s_axi_control", *(f"m_axi_dram{k}" for k in range(masters))} <= associated
    assert ["set_property", "range", "4096"] == next(c[:3] for c in calls if c[:2] == ["set_property", "range"])
    ports = shell_ports((out / "vivado" / "src" / "hwgen_dma_shell.v").read_text())
    for k in range(masters):
        assert ports[f"m_axi_dram{k}_rdata"] == ("input", b.hp_data_width)
        assert ports[f"m_axi_dram{k}_araddr"] == ("output", 32) and ports[f"m_axi_dram{k}_arlen"] == ("output", 8)
        assert ports[f"m_axi_dram{k}_arburst"] == ("output", 2) and ports[f"m_axi_dram{k}_rresp"] == ("input", 2)
    assert f"m_axi_dram{masters}_araddr" not in ports
    assert ports["s_axi_control_wdata"] == ("input", 32) and ports["s_axi_control_rdata"] == ("output", 32)
    deploy = json.loads((out / "deploy" / "accelerator.json").read_text())
    assert deploy["dram"] == {"file": "dram.bin", "bytes": info["dram_bytes"], "ip": "accelerator", "base_register": 0,
                              "align": 4096}
    assert (out / "deploy" / "dram.bin").read_bytes() == (out / "rtl" / "dram.bin").read_bytes()


def test_dram_shell_with_accelerator_synthesizes_and_fits(dram_flows):
    result = synthesize_shell(dram_flows["pynq-z2"], lookup_board("pynq-z2"))
    assert result["fits"] and result["luts"] > 0


def _axi_lite_bench(dut, script):
    """Run `script(ctx, write, read)` against the control block, `write(offset, value, strobe)` and
    `read(offset)` as the PS's master does them."""

    async def write(ctx, offset, value, strobe=0xF):
        ctx.set(dut.awaddr, offset)
        ctx.set(dut.wdata, value)
        ctx.set(dut.wstrb, strobe)
        ctx.set(dut.awvalid, 1)
        ctx.set(dut.wvalid, 1)
        while not (ctx.get(dut.awready) and ctx.get(dut.wready)):
            await ctx.tick()
        await ctx.tick()
        ctx.set(dut.awvalid, 0)
        ctx.set(dut.wvalid, 0)
        ctx.set(dut.bready, 1)
        while not ctx.get(dut.bvalid):
            await ctx.tick()
        assert ctx.get(dut.bresp) == 0
        await ctx.tick()
        ctx.set(dut.bready, 0)

    async def read(ctx, offset):
        ctx.set(dut.araddr, offset)
        ctx.set(dut.arvalid, 1)
        while not ctx.get(dut.arready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(dut.arvalid, 0)
        ctx.set(dut.rready, 1)
        while not ctx.get(dut.rvalid):
            await ctx.tick()
        value = ctx.get(dut.rdata)
        await ctx.tick()
        ctx.set(dut.rready, 0)
        return value

    async def bench(ctx):
        await script(ctx, write, read)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_the_control_registers_hold_the_readers_until_the_base_is_written():
    from hwgen.deploy.control import ENABLE_DELAY, DramControl

    dut = DramControl()
    seen = {}

    async def script(ctx, write, read):
        for _ in range(10):  # out of reset: held, whatever time passes
            assert not ctx.get(dut.enabled)
            await ctx.tick()
        assert await read(ctx, 0x4) == 0
        await write(ctx, 0x0, 0x1234_5000)
        enabled_after = 0
        while not ctx.get(dut.enabled):
            enabled_after += 1
            await ctx.tick()
        seen["delay"] = enabled_after
        assert ctx.get(dut.dram_base) == 0x1234_5000
        seen["base"] = await read(ctx, 0x0)
        seen["status"] = await read(ctx, 0x4)
        await write(ctx, 0x0, 0xAB00_0000, strobe=0b1000)  # one byte lane: the others keep their value
        seen["strobed"] = await read(ctx, 0x0)
        await write(ctx, 0x10, 0xFFFF_FFFF)  # no register there: nothing changes, reads give 0
        seen["elsewhere"] = (await read(ctx, 0x10), await read(ctx, 0x0))

    _axi_lite_bench(dut, script)
    assert seen["base"] == 0x1234_5000 and seen["status"] == 1
    assert 1 <= seen["delay"] <= ENABLE_DELAY + 2
    assert seen["strobed"] == 0xAB34_5000 and seen["elsewhere"] == (0, 0xAB34_5000)
