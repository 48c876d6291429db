"""Speed of one training step of the params' model in fp32 against bfloat16 autocast, in one run;
with ``--layout``, of its convolutions channels-first (the reference) against channels-last
(``dualmic.learn.model.ConvBnGelu``, the model's own), in the precision ``auto`` resolves to.

A training step is what ``dualmic.learn.trainer`` does per batch: the forward pass (under
``torch.autocast`` for bf16, as ``train.precision`` sets it), the slot loss, backward and an
AdamW step, on a batch of ``train.batch_size`` random inputs shaped as the params' features
(``model.window_s`` of frames). The reference is fp32 on the same machine in the same run; both
are timed in alternating rounds so that a change in the machine's load hits both alike. The
online mixing that feeds a real batch is not in it (``mixing_speed.py`` times that).

Also checked: the bf16 forward pass is finite and within bf16 rounding of the fp32 one, and the
``auto`` precision this machine resolves to (bf16 where the CPU computes in bf16 natively: AMX
tiles or AVX-512 BF16).

    .venv/bin/python benchmarks/train_precision.py                  # about 1 min on 2 cores
    .venv/bin/python benchmarks/train_precision.py --steps 20 --json precision.json
    .venv/bin/python benchmarks/train_precision.py --layout       # channels-first vs -last
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import typer
from common import (
    json_option,
    machine_info,
    params_option,
    peak_rss_mib,
    set_threads,
    threads_option,
    utc_now,
    write_json,
)
from rich.console import Console

from dualmic.core.device import autocast_dtype, cpu_has, cpu_has_native_bf16
from dualmic.core.errors import user_errors
from dualmic.core.labels import LabelCoding
from dualmic.core.params import load_params
from dualmic.learn.model import ConvBnGelu, SSLModel
from dualmic.learn.model_file import model_config
from dualmic.learn.objective import slot_loss, slot_targets

app = typer.Typer(add_completion=False)


def make_step(net: SSLModel, opt: torch.optim.Optimizer, x, targets, bf16: bool, channels_last: bool = True):
    def step() -> float:
        ConvBnGelu.channels_last = channels_last
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = slot_loss(net(x), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


@app.command()
def main(
    params: Path = params_option(),
    steps: int = typer.Option(10, min=1, help="timed steps per precision and round"),
    rounds: int = typer.Option(3, min=1, help="alternating rounds of fp32 and bf16"),
    threads: int = threads_option(),
    layout: bool = typer.Option(False, "--layout", help="compare the convolutions' memory layouts instead"),
    json_path: Path = json_option(),
) -> None:
    with user_errors():
        set_threads(threads)
        p = load_params(params)
        cfg = model_config(p)
        coding = LabelCoding.from_params(p)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(p.train.batch_size, cfg.in_channels, cfg.n_freq, cfg.n_frames, generator=gen)
        angles = torch.sort(torch.rand(p.train.batch_size, cfg.n_slots, generator=gen) * 180.0).values
        targets = slot_targets(angles, coding)
        auto_bf16 = autocast_dtype(torch.device("cpu"), "auto") is not None
        if layout:  # (name, bf16, channels-last convolutions); the reference first
            variants = (("channels-first", auto_bf16, False), ("channels-last", auto_bf16, True))
        else:
            variants = (("fp32", False, True), ("bf16", True, True))
        runs = {}
        for name, bf16, last in variants:
            torch.manual_seed(0)
            net = SSLModel(cfg)
            opt = torch.optim.AdamW(net.parameters(), lr=p.train.lr)
            runs[name] = make_step(net, opt, x, targets, bf16, last)
            for _ in range(2):  # warm-up: kernels, allocator
                runs[name]()
        times = {name: [] for name in runs}
        for _ in range(rounds):
            for name, step in runs.items():
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                times[name].append((time.perf_counter() - t0) / steps)
        torch.manual_seed(0)
        net = SSLModel(cfg).eval()
        with torch.no_grad():
            ConvBnGelu.channels_last = False
            first = net(x)
            ConvBnGelu.channels_last = True
            ref = net(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = net(x).float()
        (ref_name, _, _), (new_name, _, _) = variants
        ms = {name: 1000 * min(t) for name, t in times.items()}
        result = {
            "date": utc_now(),
            "machine": machine_info("cpu"),
            "amx": cpu_has("amx_tile"),
            "avx512_bf16": cpu_has("avx512_bf16"),
            "native_bf16": cpu_has_native_bf16(),
            "auto_resolves_to": str(autocast_dtype(torch.device("cpu"), "auto") or "fp32"),
            "batch": list(x.shape),
            "ms_per_step": ms,
            "speedup": ms[ref_name] / ms[new_name],
            "bf16_forward_finite": bool(torch.isfinite(low).all()),
            "bf16_forward_max_rel_error": float((low - ref).abs().max() / ref.abs().max()),
            "layouts_fp32_max_rel_error": float((first - ref).abs().max() / ref.abs().max()),
            "peak_rss_mib": peak_rss_mib(),
        }
        console = Console(highlight=False)
        m = result["machine"]
        console.print(
            f"{m['cpu_model']} ({m['cpu_count']} CPUs, {m['torch_threads']} torch threads), AMX "
            f"{result['amx']}, AVX-512 BF16 {result['avx512_bf16']}, "
            f"train.precision auto -> {result['auto_resolves_to']}"
        )
        what = f" in {result['auto_resolves_to']}" if layout else ""
        console.print(
            f"training step{what}, batch {result['batch']}: {ref_name} {ms[ref_name]:.0f} ms, "
            f"{new_name} {ms[new_name]:.0f} ms: {result['speedup']:.2f}x "
            f"(best of {rounds} rounds of {steps} steps)"
        )
        console.print(
            f"bf16 forward finite: {result['bf16_forward_finite']}, max error "
            f"{100 * result['bf16_forward_max_rel_error']:.2f} % of the largest logit; fp32 "
            f"channels-first vs channels-last {100 * result['layouts_fp32_max_rel_error']:.5f} %; "
            f"peak RSS {result['peak_rss_mib']:.0f} MiB"
        )
        if json_path is not None:
            write_json(json_path, result)


if __name__ == "__main__":
    app()
