"""The machine line of reports and the machine record of benchmarks (monai_seq2seq.core.machine)."""

import os
import platform

import torch

from monai_seq2seq.core import machine
from monai_seq2seq.core.machine import cpu_model, describe_machine, device_name, machine_info


def test_describe_machine_is_the_demo_line(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(platform, "processor", lambda: "")  # empty on many Linux machines: the architecture stands in
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    line = f"Linux x86_64 (x86_64), 2 logical CPUs, torch {torch.__version__}"
    assert describe_machine() == line
    assert describe_machine("cpu") == line + ", device cpu"
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert describe_machine().startswith("Linux x86_64 (arm), 2 logical CPUs")


def test_machine_info_records_this_machine():
    info = machine_info("cpu")
    assert info["cpu_count"] == os.cpu_count() and info["torch"] == torch.__version__
    assert info["system"] == platform.system() and info["machine"] == platform.machine()
    assert info["device"] == "cpu" and info["device_name"] == "cpu"
    assert info["torch_threads"] == torch.get_num_threads()
    assert describe_machine().startswith(f"{info['system']} {info['machine']} ({info['processor']}), ")


def test_cpu_model_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 7B13 64-Core Processor"
    cpuinfo.write_text("processor\t: 0\n")
    assert cpu_model(cpuinfo) is None
    assert cpu_model(tmp_path / "missing") is None


def test_device_name_without_cuda(monkeypatch):
    assert device_name("cpu") == "cpu" and device_name(torch.device("meta")) == "meta"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_name() == "cpu"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert device_name("cuda:0") == "NVIDIA H200"
    assert machine.describe_machine("cuda:0").endswith(", device cuda:0 (NVIDIA H200)")
