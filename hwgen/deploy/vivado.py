"""`OUT/vivado/`: the Vivado flow that turns a build into a bitstream for its board.

    src/hwgen_dma_shell.v   the DMA shell around the build's top module (`shell.DmaShell`)
    build.tcl               1. package the shell and `OUT/rtl/*.v` as an IP (`ipx::`), its AXI-Stream
                               interfaces `s_axis` / `m_axis` on clock `ap_clk`;
                            2. a block design: the board's processing system (PS7 or PS8) with its
                               fabric clock, an AXI DMA (MM2S and S2MM, no scatter-gather, stream
                               widths of the shell's tdata) on an HP port, its control on the PS's
                               general-purpose master, the accelerator between the DMA's streams,
                               a reset block for it; a build whose weights are loaded after reset
                               gets a second AXI DMA (MM2S only, 64-bit) on `s_axis_weights`;
                               a build that reads DRAM gets its read masters `m_axi_dram<k>` on
                               the board's DRAM ports (`[dram] ports`, one each) and its control
                               registers `s_axi_control` on the general-purpose master
                               (`hwgen.deploy.control`);
                            3. synthesis, implementation, bitstream;
                            4. `accelerator.bit` and `accelerator.hwh` into `OUT/deploy/`
    build.sh                runs it: `vivado -mode batch -source build.tcl`, log in vivado.log

Everything is written from the board's data and the build's streams (`tcl.Script`); nothing runs
Vivado here unless it is on PATH and asked for (`run_flow`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from hwgen.deploy.boards import Board
from hwgen.deploy.package import ACCELERATOR_NAME, BITFILE, DMA_NAME, HWH, WEIGHTS_DMA_NAME
from hwgen.deploy.control import CONTROL_PREFIX
from hwgen.deploy.shell import SHELL_NAME, WEIGHT_TDATA_BITS, DmaShell, dram_port
from hwgen.deploy.tcl import Raw, Script, config, sub
from hwgen.driver.wire import dma_bytes
from hwgen.errors import HwgenError, ToolError
from hwgen.rtl.emit import to_verilog

IP_VLNV = ("hwgen.org", "hwgen", SHELL_NAME, "1.0")
#: the processing system's IP, pins and configuration keys, by PS type
PS = {
    "ps7": {"ip": "processing_system7", "rule": "xilinx.com:bd_rule:processing_system7",
            "automation": 'make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"',
            "clock": "FCLK_CLK0", "resetn": "FCLK_RESET0_N", "master": "M_AXI_GP0",
            "enable": lambda b: {"CONFIG.PCW_USE_M_AXI_GP0": 1, f"CONFIG.PCW_USE_{b.hp_port}": 1,
                                 f"CONFIG.PCW_{b.hp_port}_DATA_WIDTH": b.hp_data_width,
                                 "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ": b.fclk_mhz}},
    "ps8": {"ip": "zynq_ultra_ps_e", "rule": "xilinx.com:bd_rule:zynq_ultra_ps_e",
            "automation": 'apply_board_preset "1"',
            "clock": "pl_clk0", "resetn": "pl_resetn0", "master": "M_AXI_HPM0_FPD",
            "enable": lambda b: {"CONFIG.PSU__USE__M_AXI_GP0": 1, "CONFIG.PSU__USE__M_AXI_GP1": 0,
                                 "CONFIG.PSU__USE__S_AXI_GP2": 1,
                                 "CONFIG.PSU__SAXIGP2__DATA_WIDTH": b.hp_data_width,
                                 "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ": b.fclk_mhz}},
}


#: bytes of the control registers' window (`hwgen.deploy.control`: a 4 KB page)
CONTROL_RANGE = 4096


def dram_port_config(board: Board, masters: int) -> dict[str, object]:
    """The PS configuration that enables the first `masters` of the board's DRAM ports at the
    width of its HP ports: on a PS7 `S_AXI_HPn` is `PCW_USE_S_AXI_HPn`; on a PS8 `S_AXI_HPn_FPD`
    is the slave `S_AXI_GP(n+2)`."""
    out: dict[str, object] = {}
    for port in board.dram_ports[:masters]:
        if board.ps == "ps7":
            out.update({f"CONFIG.PCW_USE_{port}": 1, f"CONFIG.PCW_{port}_DATA_WIDTH": board.hp_data_width})
        else:
            gp = int(port.removeprefix("S_AXI_HP").removesuffix("_FPD")) + 2
            out.update({f"CONFIG.PSU__USE__S_AXI_GP{gp}": 1, f"CONFIG.PSU__SAXIGP{gp}__DATA_WIDTH": board.hp_data_width})
    return out


def _latest(ip: str) -> Raw:
    """The newest version of a Xilinx IP in the catalog: `[lindex [get_ipdefs -all xilinx.com:ip:<ip>:*] end]`."""
    return sub("lindex", sub("get_ipdefs", "-all", f"xilinx.com:ip:{ip}:*"), "end")


def flow_script(board: Board, top: str, rtl_files: list[str], in_width: int, out_width: int,
                weights: bool = False, dram_masters: int = 0) -> Script:
    """The whole flow as a Tcl script, paths relative to the script's folder (`here`); `weights`:
    the accelerator loads its weights after reset from a second DMA; `dram_masters`: its read
    masters, one per DRAM port of the board, and its control registers."""
    if dram_masters > len(board.dram_ports):
        raise HwgenError(f"the build has {dram_masters} DRAM read masters, {board.name} has "
                         f"{len(board.dram_ports)} ports for them: build it with --board {board.name}",
                         where="accelerator.json")
    s_in, s_out = 8 * dma_bytes(in_width), 8 * dma_bytes(out_width)
    ps = PS[board.ps]
    t = Script()
    t.comment(f"hwgen: Vivado flow for {top} on {board.name} ({board.part}), fabric clock {board.fclk_mhz:g} MHz.\n"
              "Run with build.sh (vivado -mode batch -source build.tcl).")
    t.add("set", "here", sub("file", "normalize", sub("file", "dirname", sub("info", "script"))))
    t.comment("1. the accelerator as an IP")
    t.add("create_project", "-force", "hwgen_ip", Raw("$here/ip_project"), "-part", board.part)
    t.add("add_files", "-norecurse", Raw("[list " + " ".join(f"$here/{f}" for f in rtl_files) + "]"))
    t.add("set_property", "top", SHELL_NAME, sub("current_fileset"))
    t.add("update_compile_order", "-fileset", "sources_1")
    t.add("ipx::package_project", "-root_dir", Raw("$here/ip"), "-vendor", IP_VLNV[0], "-library", IP_VLNV[1],
          "-taxonomy", "/UserIP", "-import_files")
    t.add("ipx::infer_bus_interfaces", "xilinx.com:interface:axis_rtl:1.0", sub("ipx::current_core"))
    masters = [dram_port(k) for k in range(dram_masters)]
    if dram_masters:
        t.add("ipx::infer_bus_interfaces", "xilinx.com:interface:aximm_rtl:1.0", sub("ipx::current_core"))
        core = sub("ipx::current_core")
        t.add("ipx::add_memory_map", CONTROL_PREFIX, core)
        t.add("set_property", "slave_memory_map_ref", CONTROL_PREFIX,
              sub("ipx::get_bus_interfaces", CONTROL_PREFIX, "-of_objects", core))
        t.add("ipx::add_address_block", "reg0", sub("ipx::get_memory_maps", CONTROL_PREFIX, "-of_objects", core))
        t.add("set_property", "range", CONTROL_RANGE,
              sub("ipx::get_address_blocks", "reg0", "-of_objects", sub("ipx::get_memory_maps", CONTROL_PREFIX,
                                                                          "-of_objects", core)))
    for busif in ("s_axis", "m_axis") + (("s_axis_weights",) if weights else ()) + \
            ((CONTROL_PREFIX, *masters) if dram_masters else ()):
        t.add("ipx::associate_bus_interfaces", "-busif", busif, "-clock", "ap_clk", sub("ipx::current_core"))
    t.add("set_property", "version", IP_VLNV[3], sub("ipx::current_core"))
    t.add("ipx::update_checksums", sub("ipx::current_core"))
    t.add("ipx::save_core", sub("ipx::current_core"))
    t.add("close_project")
    t.comment("2. the block design")
    t.add("create_project", "-force", "hwgen_bd", Raw("$here/project"), "-part", board.part)
    if board.board_part:
        when = Script()
        when.add("set_property", "board_part", board.board_part, sub("current_project"))
        t.when(Raw(f"[llength [get_board_parts -quiet {board.board_part}]] > 0"), when)
    t.add("set_property", "ip_repo_paths", Raw("[list $here/ip]"), sub("current_project"))
    t.add("update_ip_catalog")
    t.add("create_bd_design", "hwgen")
    t.add("create_bd_cell", "-type", "ip", "-vlnv", _latest(ps["ip"]), "ps")
    t.add("apply_bd_automation", "-rule", ps["rule"], "-config", ps["automation"], sub("get_bd_cells", "ps"))
    t.add("set_property", "-dict", config(**ps["enable"](board), **dram_port_config(board, dram_masters)),
          sub("get_bd_cells", "ps"))
    mm_width = max(32, s_in, s_out)
    t.add("create_bd_cell", "-type", "ip", "-vlnv", _latest("axi_dma"), DMA_NAME)
    t.add("set_property", "-dict", config(**{
        "CONFIG.c_include_sg": 0, "CONFIG.c_sg_include_stscntrl_strm": 0,
        "CONFIG.c_sg_length_width": board.dma_buffer_length_width,
        "CONFIG.c_m_axis_mm2s_tdata_width": s_in, "CONFIG.c_s_axis_s2mm_tdata_width": s_out,
        "CONFIG.c_m_axi_mm2s_data_width": mm_width, "CONFIG.c_m_axi_s2mm_data_width": mm_width,
        "CONFIG.c_mm2s_burst_size": board.dma_max_burst_len, "CONFIG.c_s2mm_burst_size": board.dma_max_burst_len,
    }), sub("get_bd_cells", DMA_NAME))
    t.add("create_bd_cell", "-type", "ip", "-vlnv", ":".join(IP_VLNV), ACCELERATOR_NAME)
    t.add("connect_bd_intf_net", sub("get_bd_intf_pins", f"{DMA_NAME}/M_AXIS_MM2S"),
          sub("get_bd_intf_pins", f"{ACCELERATOR_NAME}/s_axis"))
    t.add("connect_bd_intf_net", sub("get_bd_intf_pins", f"{ACCELERATOR_NAME}/m_axis"),
          sub("get_bd_intf_pins", f"{DMA_NAME}/S_AXIS_S2MM"))
    t.add("apply_bd_automation", "-rule", "xilinx.com:bd_rule:axi4",
          "-config", f'Master "/ps/{ps["master"]}" Clk "Auto"', sub("get_bd_intf_pins", f"{DMA_NAME}/S_AXI_LITE"))
    for port in ("M_AXI_MM2S", "M_AXI_S2MM"):
        t.add("apply_bd_automation", "-rule", "xilinx.com:bd_rule:axi4",
              "-config", f'Slave "/ps/{board.hp_port}" Clk "Auto"', sub("get_bd_intf_pins", f"{DMA_NAME}/{port}"))
    if weights:  # the weight stream: a second DMA, memory to stream only
        t.add("create_bd_cell", "-type", "ip", "-vlnv", _latest("axi_dma"), WEIGHTS_DMA_NAME)
        t.add("set_property", "-dict", config(**{
            "CONFIG.c_include_sg": 0, "CONFIG.c_sg_include_stscntrl_strm": 0, "CONFIG.c_include_s2mm": 0,
            "CONFIG.c_sg_length_width": board.dma_buffer_length_width,
            "CONFIG.c_m_axis_mm2s_tdata_width": WEIGHT_TDATA_BITS, "CONFIG.c_m_axi_mm2s_data_width": mm_width,
            "CONFIG.c_mm2s_burst_size": board.dma_max_burst_len,
        }), sub("get_bd_cells", WEIGHTS_DMA_NAME))
        t.add("connect_bd_intf_net", sub("get_bd_intf_pins", f"{WEIGHTS_DMA_NAME}/M_AXIS_MM2S"),
              sub("get_bd_intf_pins", f"{ACCELERATOR_NAME}/s_axis_weights"))
        t.add("apply_bd_automation", "-rule", "xilinx.com:bd_rule:axi4", "-config",
              f'Master "/ps/{ps["master"]}" Clk "Auto"', sub("get_bd_intf_pins", f"{WEIGHTS_DMA_NAME}/S_AXI_LITE"))
        t.add("apply_bd_automation", "-rule", "xilinx.com:bd_rule:axi4", "-config",
              f'Slave "/ps/{board.hp_port}" Clk "Auto"', sub("get_bd_intf_pins", f"{WEIGHTS_DMA_NAME}/M_AXI_MM2S"))
    if dram_masters:  # the control registers on the PS's master, each read master on a DRAM port of its own
        t.add("apply_bd_automation", "-rule", "xilinx.com:bd_rule:axi4", "-config",
              f'Master "/ps/{ps["master"]}" Clk "Auto"', sub("get_bd_intf_pins", f"{ACCELERATOR_NAME}/{CONTROL_PREFIX}"))
        for master, port in zip(masters, board.dram_ports):
            t.add("apply_bd_automation", "-rule", "xilinx.com:bd_rule:axi4", "-config",
                  f'Slave "/ps/{port}" Clk "Auto"', sub("get_bd_intf_pins", f"{ACCELERATOR_NAME}/{master}"))
    t.add("create_bd_cell", "-type", "ip", "-vlnv", _latest("proc_sys_reset"), "accelerator_reset")
    t.add("connect_bd_net", sub("get_bd_pins", f"ps/{ps['clock']}"), sub("get_bd_pins", f"{ACCELERATOR_NAME}/ap_clk"),
          sub("get_bd_pins", "accelerator_reset/slowest_sync_clk"))
    t.add("connect_bd_net", sub("get_bd_pins", f"ps/{ps['resetn']}"), sub("get_bd_pins", "accelerator_reset/ext_reset_in"))
    t.add("connect_bd_net", sub("get_bd_pins", "accelerator_reset/peripheral_aresetn"),
          sub("get_bd_pins", f"{ACCELERATOR_NAME}/ap_rst_n"))
    t.add("assign_bd_address")
    t.add("validate_bd_design")
    t.add("save_bd_design")
    t.add("add_files", "-norecurse", sub("make_wrapper", "-files", sub("get_files", "hwgen.bd"), "-top"))
    t.add("set_property", "top", "hwgen_wrapper", sub("current_fileset"))
    t.comment("3. synthesis, implementation, bitstream")
    t.add("launch_runs", "impl_1", "-to_step", "write_bitstream", "-jobs", 4)
    t.add("wait_on_run", "impl_1")
    failed = Script()
    failed.add("error", "implementation did not reach the bitstream: see project/hwgen_bd.runs/impl_1")
    t.when(Raw('[get_property PROGRESS [get_runs impl_1]] != "100%"'), failed)
    t.comment("4. into the deploy folder, as PYNQ's Overlay loads them")
    t.add("file", "copy", "-force", sub("lindex", sub("glob", Raw("$here/project/hwgen_bd.runs/impl_1/*.bit")), 0),
          Raw(f"$here/../deploy/{BITFILE}"))
    t.add("file", "copy", "-force",
          sub("lindex", sub("glob", Raw("$here/project/hwgen_bd.gen/sources_1/bd/hwgen/hw_handoff/*.hwh"),
                            Raw("$here/project/hwgen_bd.srcs/sources_1/bd/hwgen/hw_handoff/*.hwh")), 0),
          Raw(f"$here/../deploy/{HWH}"))
    return t


def write_flow(build_dir: Path, board: Board) -> Path:
    """Write `build_dir/vivado/` for `board` from the build's `accelerator.json` and RTL."""
    build_dir = Path(build_dir)
    info = json.loads((build_dir / "accelerator.json").read_text())
    vivado = build_dir / "vivado"
    if vivado.exists():
        shutil.rmtree(vivado)
    (vivado / "src").mkdir(parents=True)
    weights = bool(info.get("weight_beats"))
    masters = int(info.get("dram_masters", 0))
    shell = DmaShell(info["top"], info["input"]["width"], info["output"]["width"], info["output"]["beats_per_frame"],
                     weights, masters, int(info.get("dram_bits", 0)) or board.hp_data_width,
                     tuple(info.get("dram_writers", ())))
    (vivado / "src" / f"{SHELL_NAME}.v").write_text(to_verilog(shell, SHELL_NAME))
    rtl = sorted(p.name for p in (build_dir / "rtl").glob("*.v"))
    files = [f"../rtl/{name}" for name in rtl] + [f"src/{SHELL_NAME}.v"]
    script = flow_script(board, info["top"], files, info["input"]["width"], info["output"]["width"], weights, masters)
    (vivado / "build.tcl").write_text(script.text())
    sh = vivado / "build.sh"
    sh.write_text("\n".join(["#!/bin/sh", f"# hwgen: the bitstream of this build for {board.name}; needs Vivado on PATH.",
                             "set -e", 'cd "$(dirname "$0")"',
                             "vivado -mode batch -source build.tcl -log vivado.log -journal vivado.jou", ""]))
    sh.chmod(0o755)
    return vivado


def run_flow(build_dir: Path) -> Path:
    """Run `build_dir/vivado/build.sh` where Vivado is on PATH, its output shown as it comes and kept
    in `vivado.log`; without Vivado, one line saying what to run where."""
    script = Path(build_dir) / "vivado" / "build.sh"
    if not script.is_file():
        raise HwgenError("no Vivado flow: build with --board first", where=str(build_dir))
    if shutil.which("vivado") is None:
        raise HwgenError(f"vivado is not on PATH: run {script} on a machine with Vivado (everything else in "
                         f"{build_dir} is complete)", where="--bitstream")
    proc = subprocess.Popen(["sh", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
    if proc.wait() != 0:
        raise ToolError("vivado", f"the flow of {build_dir}", f"exit status {proc.returncode}",
                        str(script.parent / "vivado.log"))
    return Path(build_dir) / "deploy" / BITFILE
