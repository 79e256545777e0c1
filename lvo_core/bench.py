"""Benchmark: the LVO fast path against the naive loop, measured side by side in one process.

    python -m lvo_core.bench                      # CUDA if available (full SD1.5-architecture UNet), else CPU
    python -m lvo_core.bench --device cpu         # the tiny model on CPU

On CUDA the model is a full SD1.5-architecture UNet with random weights (no download), 64×64 latents, hooked at
``up_blocks.1.attentions.1``; on CPU the tiny test model at 16×16 (there the hooked block sits in the last level,
so stopping after it saves little — on SD1.5 the two highest-resolution levels are skipped). Both paths run the same algorithm (augment,
schedule-matched noise, objective, penalties, preconditioned Adam):

* **naive** — fp32, the full UNet forward with a capture hook, weights requiring grad, one unit per run;
* **optimized** — forward stopped after the hooked block, frozen weights, bf16 autocast on CUDA with an fp32
  master latent, many units per batch, only the needed encoder rows, no host sync inside the step loop.

Each configuration is timed three times and the median kept. Prints a table and writes JSON: ms per step, ms per unit-step, speed-up vs naive, achieved TFLOP/s (counted with
``torch.utils.flop_counter``) and share of the device's bf16 peak where known, peak memory, and the wall time of a
full 100-step visualization of 1 and of 64 units. It also reports the memory of LVO's trainable copy for the
full-size FLUX.1-dev architecture hooked at ``transformer_blocks.18`` (built on the meta device: no weights, no
download), the extra memory LVO needs under ComfyUI's inference-mode weights.
"""

from __future__ import annotations

from .progress import announce_program

announce_program(__name__, __spec__)  # run as a program: say so before torch loads

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .fileio import ensure_folder, write_text
from .lvo.objectives import SAEFeature
from .lvo.optimize import optimize, preset
from .lvo.transforms import (
    augment,
    moment_penalty,
    range_penalty,
    spectral_precondition,
    total_variation,
)
from .model.backend import DiffusersBackend
from .model.hooks import capture
from .model.noise import add_noise, alphas_from_scheduler, step_noise
from .model.sampling import seeded_noise
from .model.tiny import random_sae, sd15_scheduler, tiny_unet

HOOKPOINT = "up_blocks.1.attentions.1"
BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}


def build(device: torch.device) -> dict[str, Any]:
    """The model, latent shape, context and SAE for this device."""
    torch.manual_seed(0)
    if device.type == "cuda":
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # SD1.5 shapes
        shape, context = (4, 64, 64), torch.randn(1, 77, 768)
        sae = random_sae(d_in=1280, d_sae=20480, k=32)
        name = "SD1.5-architecture UNet (random weights), 64x64 latent"
    else:
        unet = tiny_unet()  # the tiny test model
        shape, context = (4, 16, 16), torch.randn(1, 6, 32)
        sae = random_sae(d_in=32, d_sae=128, k=4)
        name = "tiny SD-shaped test UNet (random weights), 16x16 latent"
    unet = unet.to(device).eval()
    return {"unet": unet, "shape": shape, "context": context.to(device), "sae": sae.to(device=device),
            "model": name, "params_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive_runner(world: dict[str, Any], device: torch.device) -> Callable[[int], None]:
    """The straightforward loop: fp32, full forward with a capture hook, weights requiring grad, batch 1."""
    unet, sae, shape = world["unet"], world["sae"], world["shape"]
    alphas = alphas_from_scheduler(sd15_scheduler()).float().to(device)
    z = seeded_noise([1], shape, device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    config = preset("sae")
    gen = torch.Generator().manual_seed(0)
    t = torch.tensor([500], device=device)
    for p in unet.parameters():
        p.requires_grad_(True)

    def step(i: int) -> None:
        x = add_noise(augment(z, config.augment.draw(gen)), t, alphas, step_noise([1], i, shape, device))
        with capture(unet, HOOKPOINT, detach=False) as rec:
            unet(x, t, encoder_hidden_states=world["context"])
        act = sae.dense_acts(rec.tokens[0], [7]).mean()
        loss = -act + 0.5 * range_penalty(z).sum() + 0.5 * moment_penalty(z).sum() + 0 * total_variation(z).sum()
        opt.zero_grad()
        unet.zero_grad(set_to_none=True)
        loss.backward()
        z.grad = spectral_precondition(z.grad)
        opt.step()
        float(loss.detach())  # the naive loop reads its loss back every step
    return step


def timed(run: Callable[[], None], device: torch.device, repeats: int = 1) -> float:
    """Median wall time of ``repeats`` runs (the device synchronized around each)."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


REPEATS = 3


def measure_naive(world, device, steps: int, warmup: int) -> dict[str, Any]:
    step = naive_runner(world, device)
    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(lambda: [step(warmup + i) for i in range(steps)], device, REPEATS)
    for p in world["unet"].parameters():
        p.requires_grad_(False)
    ms = 1000 * seconds / steps
    return {"path": "naive", "batch": 1, "ms_per_step": round(ms, 3), "ms_per_unit_step": round(ms, 3),
            "peak_memory_mb": peak_mb(device)}


def peak_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1) if device.type == "cuda" else None


def measure_fast(world, device, batch: int, steps: int, warmup: int, precision: str) -> dict[str, Any]:
    backend = DiffusersBackend(world["unet"], HOOKPOINT, scheduler=sd15_scheduler(),
                               empty_context=world["context"], latent_shape=world["shape"], copy_weights=False)
    units = list(range(batch))
    objective = SAEFeature(world["sae"], units)
    init = seeded_noise(units, world["shape"], device)
    config = preset("sae", steps=warmup, precision=precision, check_every=10)
    optimize(backend, objective, init, [500], units, config)  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(lambda: optimize(backend, objective, init, [500], units, preset("sae", steps=steps,
                    precision=precision, check_every=10)), device, REPEATS)
    ms = 1000 * seconds / steps
    with FlopCounterMode(display=False) as counter:
        optimize(backend, objective, init, [500], units, preset("sae", steps=1, precision=precision))
    flops = counter.get_total_flops()
    return {"path": "optimized", "batch": batch, "precision": precision, "ms_per_step": round(ms, 3),
            "ms_per_unit_step": round(ms / batch, 4), "tflops": round(flops / (ms / 1000) / 1e12, 2),
            "peak_memory_mb": peak_mb(device)}


def full_run(world, device, units: int, precision: str, steps: int = 100) -> float:
    backend = DiffusersBackend(world["unet"], HOOKPOINT, scheduler=sd15_scheduler(),
                               empty_context=world["context"], latent_shape=world["shape"], copy_weights=False)
    ids = list(range(units))
    return round(timed(lambda: optimize(backend, SAEFeature(world["sae"], ids), seeded_noise(ids, world["shape"],
                                                                                             device),
                                        [500], ids, preset("sae", steps=steps, precision=precision,
                                                           check_every=10)), device), 3)


def measure_bank(world, device, batch: int, steps: int = 25, timed_steps: int | None = None,
                 precision: str = "fp32") -> dict[str, Any]:
    """Sample-bank throughput: unconditional DDIM sampling (as the bank samples; and with CFG, which doubles each
    UNet batch), scoring every SAE feature at one timestep (4 draws), and the faithful recipe's 30-step polish.
    ``timed_steps`` < ``steps`` times that many sampler steps and scales to ``steps`` (said in the row)."""
    from .analysis.bank import score_latents
    from .model.sampling import sample_with

    backend = DiffusersBackend(world["unet"], HOOKPOINT, scheduler=sd15_scheduler(),
                               empty_context=world["context"], latent_shape=world["shape"], copy_weights=False)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    run_steps = timed_steps or steps
    row: dict[str, Any] = {"batch": batch, "sampler_steps": steps, "timed_steps": run_steps, "precision": precision}
    for name, guidance in (("no_cfg", 1.0), ("cfg", 7.5)):
        def generate() -> None:
            with torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32"):
                sample_with(backend.predict, backend.schedule.sampler(steps), world["context"],
                            uncond=world["context"] if guidance != 1.0 else None, guidance=guidance,
                            steps=run_steps, seeds=range(batch), latent_shape=world["shape"], device=device)
        generate()  # warm-up
        seconds = timed(generate, device, REPEATS) * steps / run_steps
        row[f"samples_per_s_{name}"] = round(batch / seconds, 3)
    latents = seeded_noise(range(batch), world["shape"], device)
    score = lambda: score_latents(backend, latents, 200, world["sae"], draws=4, batch_size=batch)  # noqa: E731
    score()
    row["scored_samples_per_s"] = round(batch / timed(score, device, REPEATS), 3)
    return row


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated and slower."""
    try:
        return "bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def say(text: str) -> None:
    """A progress line on stderr: each measurement takes seconds to minutes, and the table comes at the end."""
    print(f"[bench] {text} …", file=sys.stderr, flush=True)


def run(device: torch.device, batches: list[int], steps: int, warmup: int, full: bool,
        bank: bool = True) -> dict[str, Any]:
    say(f"building the model on {device}")
    world = build(device)
    if device.type == "cuda":
        precisions = ["bf16"]
    else:
        precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    say(f"naive loop, fp32, batch 1 ({warmup} + {steps} steps, {REPEATS} times)")
    naive = measure_naive(world, device, steps, warmup)
    rows = [naive]
    for precision in precisions:
        for batch in batches:
            say(f"optimized path, {precision}, batch {batch}")
            try:
                rows.append(measure_fast(world, device, batch, steps, warmup, precision))
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                rows.append({"path": "optimized", "batch": batch, "precision": precision, "error": "out of memory"})
    best = min((r for r in rows if r["path"] == "optimized" and "ms_per_unit_step" in r),
               key=lambda r: r["ms_per_unit_step"])
    precision = best["precision"]
    peak = peak_tflops(device)
    for row in rows:
        if "ms_per_unit_step" in row:
            row["speedup_vs_naive"] = round(naive["ms_per_unit_step"] / row["ms_per_unit_step"], 2)
        if peak and row.get("tflops") is not None:
            row["share_of_bf16_peak"] = round(row["tflops"] / peak, 4)
    report = {"date": date.today().isoformat(), "device": torch.cuda.get_device_name(device) if device.type == "cuda"
              else f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
              "torch": torch.__version__, "model": world["model"], "unet_params_m": world["params_m"],
              "hookpoint": HOOKPOINT, "bf16_peak_tflops": peak, "rows": rows,
              "command": "python -m lvo_core.bench " + ("" if device.type == "cuda" else "--device cpu")}
    if full:
        say(f"full 100-step visualizations of 1 and 64 units and a 30-step polish ({precision})")
        report["full_precision"] = precision
        report["full_100_steps_seconds"] = {"1_unit": full_run(world, device, 1, precision),
                                            "64_units": full_run(world, device, 64, precision)}
        report["polish_30_steps_seconds_64_units"] = full_run(world, device, 64, precision, steps=30)
    if bank:
        say("sample-bank throughput (DDIM sampling with and without CFG, scoring)")
        report["bank"] = measure_bank(world, device, 32 if device.type == "cuda" else 16, precision=precision
                                      if device.type == "cuda" else "fp32")
    return report




def sd15_cpu_estimate(timed_steps: int = 2) -> dict[str, Any]:
    """The SD1.5-architecture UNet (random weights, 64×64 latent) on this CPU: bank throughput from ``timed_steps``
    sampler steps at batch 1, scaled to 25, and one optimization step — what a CPU-only user would wait."""
    from diffusers import UNet2DConditionModel

    say("SD1.5-architecture UNet on this CPU: bank sampling, scoring and one polish step (minutes)")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).eval()
    world = {"unet": unet, "shape": (4, 64, 64), "context": torch.randn(1, 77, 768),
             "sae": random_sae(d_in=1280, d_sae=20480, k=32)}
    device = torch.device("cpu")
    row = measure_bank(world, device, 1, timed_steps=timed_steps)
    row["polish_step_seconds_1_unit"] = round(full_run(world, device, 1, "fp32", steps=2) / 2, 2)
    return row


def label_cost(bank_row: dict[str, Any], phrases: int, label_images: int = 16, score_images: int = 8,
               draws: int = 2) -> dict[str, Any]:
    """What ``label`` costs for a vocabulary of ``phrases``, from a measured bank row: it generates (phrases + 1) ×
    ``label_images`` and phrases × ``score_images`` images (DDIM, no CFG, as the bank samples) and reads every unit
    on each at one timestep (``draws`` draws; the bank row times 4). One pass serves every feature of the SAE."""
    images = (phrases + 1) * label_images + phrases * score_images
    per_image = 1 / bank_row["samples_per_s_no_cfg"] + draws / 4 / bank_row["scored_samples_per_s"]
    return {"phrases": phrases, "images": images, "seconds_per_image": round(per_image, 4),
            "hours": round(images * per_image / 3600, 2)}


def memory_rows() -> list[dict[str, Any]]:
    """The trainable copy's size on every full-size architecture we support, hooked where people hook it
    (measured on the meta device: no weights, no memory)."""
    from .model.memory import HOOKPOINTS, copy_sizes

    return [row for arch in HOOKPOINTS for row in copy_sizes(arch)]


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['device']} · torch {report['torch']} · {report['model']} ({report['unet_params_m']} M params)"
          f" · hook {report['hookpoint']}")
    print(f"{'path':<10} {'prec':>5} {'batch':>5} {'ms/step':>9} {'ms/unit-step':>13} {'speed-up':>9} "
          f"{'TFLOP/s':>8} {'peak MB':>8}")
    for r in report["rows"]:
        if "error" in r:
            print(f"{r['path']:<10} {r.get('precision', 'fp32'):>5} {r['batch']:>5}  {r['error']}")
            continue
        print(f"{r['path']:<10} {r.get('precision', 'fp32'):>5} {r['batch']:>5} {r['ms_per_step']:>9.2f} "
              f"{r['ms_per_unit_step']:>13.3f} "
              f"{r.get('speedup_vs_naive', 1):>8.1f}x {str(r.get('tflops', '—')):>8} "
              f"{str(r.get('peak_memory_mb') or '—'):>8}")
    if "full_100_steps_seconds" in report:
        f = report["full_100_steps_seconds"]
        print(f"full 100-step visualization ({report['full_precision']}): 1 unit {f['1_unit']} s, "
              f"64 units {f['64_units']} s; faithful's 30-step polish, 64 units: "
              f"{report['polish_30_steps_seconds_64_units']} s")
    for key, label in (("bank", "sample bank"), ("sd15_cpu", "sample bank, SD1.5 architecture on this CPU")):
        if key in report:
            b = report[key]
            scaled = f" (timed {b['timed_steps']} steps, scaled)" if b["timed_steps"] != b["sampler_steps"] else ""
            print(f"{label} (DDIM {b['sampler_steps']}{scaled}, batch {b['batch']}, {b['precision']}): "
                  f"{b['samples_per_s_no_cfg']} samples/s without CFG, {b['samples_per_s_cfg']} with CFG; "
                  f"scoring every feature at one t (4 draws): {b['scored_samples_per_s']} samples/s")
    for key, label in (("bank", "this device"), ("sd15_cpu", "SD1.5 architecture on this CPU")):
        if key in report:
            for phrases in (35, 1268):  # the toy vocabulary; the shipped 'common' one
                c = label_cost(report[key], phrases)
                print(f"label ({label}): {phrases} phrases -> {c['images']} images x {c['seconds_per_image']} s = "
                      f"{c['hours']} h per SAE, every feature at once")
    if report.get("trainable_copy"):
        print("trainable copy up to the hook (full-size architectures on the meta device):")
        for r in report["trainable_copy"]:
            print(f"  {r['architecture']:<5} {r['hookpoint']:<28} {r['copy_params'] / 1e6:>8.1f} M of "
                  f"{r['model_params'] / 1e6:.1f} M params ({r['copy_fraction']:.0%}) = {r['copy_gib']} GiB "
                  f"{r['dtype']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lvo_core.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="1,8,32,64", help="optimized batch sizes (default 1,8,32,64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--no-full", action="store_true", help="skip the full 100-step runs")
    parser.add_argument("--no-bank", action="store_true", help="skip the sample-bank throughput")
    parser.add_argument("--sd15-cpu", action="store_true",
                        help="also time the SD1.5-architecture UNet on the CPU (bank and one LVO step; minutes)")
    parser.add_argument("--out", default="lvo_runs/bench/bench.json", help="JSON report")
    args = parser.parse_args(argv)
    report = run(torch.device(args.device), [int(b) for b in args.batches.split(",")], args.steps, args.warmup,
                 not args.no_full, not args.no_bank)
    if args.sd15_cpu:
        report["sd15_cpu"] = sd15_cpu_estimate()
    report["trainable_copy"] = memory_rows()
    print_report(report)
    out = Path(args.out)
    ensure_folder(out.parent)
    write_text(out, json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
