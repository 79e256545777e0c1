"""Train the toy world's model from scratch, seeded and recorded:

    python -m lvo_core.toy.train --out lvo_core/toy/weights

1. render a labelled dataset (:mod:`.world`) and fit the linear latent codec (:mod:`.codec`);
2. train an SD-shaped conditional UNet2DConditionModel (cross-attention, so ``up_blocks.1.attentions.1`` exists)
   with the prompt encoder on ε-prediction, SD1.5's β schedule, 10 % prompt dropout for classifier-free guidance,
   AdamW with warm-up and cosine decay, an EMA of the weights (saved);
3. train a top-k SAE (sparsify layout) on that block's activations over noised dataset latents at random timesteps
   with their prompts.

Everything is seeded; ``record.json`` keeps the command, seeds, losses, timings and versions, so anyone can retrain
the same world (bit-for-bit on the same CPU and torch build).
"""

from __future__ import annotations

from ..progress import announce_program

announce_program(__name__, __spec__)  # run as a program: say so before torch loads

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..model.hooks import capture
from ..model.noise import add_noise, alphas_from_scheduler
from ..model.tiny import sd15_scheduler
from ..progress import Printer, StepFn, stage
from ..runs.report import save_json, versions
from ..sae import save_sae
from ..sae.model import SparseAutoencoder
from .codec import PatchPCACodec
from .text import NULL, ToyPromptEncoder, parse
from .world import make_dataset

HOOKPOINT = "up_blocks.1.attentions.1"
CONTEXT_DIM = 32


def toy_unet(seed: int = 0):
    """The toy UNet: SD1.x's layout at small widths on the 8×8×8 codec latent (2.5 M parameters; ≈ 0.3 s per
    training step of 128 on 2 CPU cores)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=8, in_channels=8, out_channels=8, layers_per_block=2,
                                block_out_channels=(48, 96), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=CONTEXT_DIM,
                                attention_head_dim=4, norm_num_groups=16)


def lr_at(step: int, steps: int, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_diffusion(latents: torch.Tensor, tokens: torch.Tensor, steps: int, batch: int, lr: float, seed: int,
                    log: list[dict[str, Any]], on_step: StepFn | None = None
                    ) -> tuple[torch.nn.Module, ToyPromptEncoder]:
    unet, encoder = toy_unet(seed), ToyPromptEncoder(CONTEXT_DIM)
    ema_unet, ema_encoder = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(encoder).requires_grad_(False)
    params = list(unet.parameters()) + list(encoder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    alphas = alphas_from_scheduler(sd15_scheduler()).float()
    gen = torch.Generator().manual_seed(seed)
    start, running = time.perf_counter(), 0.0
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        idx = torch.randint(len(latents), (batch,), generator=gen)
        x0, tok = latents[idx], tokens[idx].clone()
        tok[torch.rand(batch, generator=gen) < 0.1] = NULL  # prompt dropout: learn the unconditional model too
        t = torch.randint(1000, (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        pred = unet(add_noise(x0, t, alphas, eps), t, encoder_hidden_states=encoder.embed(tok)).sample
        loss = F.mse_loss(pred, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema, live in ((ema_unet, unet), (ema_encoder, encoder)):
                for e, p in zip(ema.parameters(), live.parameters()):
                    e.lerp_(p, 1 - decay)
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step else value
        if on_step is not None:
            on_step(step + 1, steps)
        if (step + 1) % 100 == 0 or step + 1 == steps:
            entry = {"step": step + 1, "loss": round(running, 5), "seconds": round(time.perf_counter() - start, 1)}
            log.append(entry)
            print(f"diffusion {entry}", file=sys.stderr, flush=True)
    return ema_unet.eval(), ema_encoder.eval()


@torch.no_grad()
def block_activations(unet, encoder, latents, tokens, count: int, seed: int) -> torch.Tensor:
    """Tokens of the hooked block ``[N·64, C]`` on noised dataset latents at random timesteps, with their prompts."""
    alphas = alphas_from_scheduler(sd15_scheduler()).float()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, count, 512):
        idx = torch.randint(len(latents), (min(512, count - start),), generator=gen)
        t = torch.randint(1000, (len(idx),), generator=gen)
        x = add_noise(latents[idx], t, alphas, torch.randn(latents[idx].shape, generator=gen))
        with capture(unet, HOOKPOINT) as rec:
            unet(x, t, encoder_hidden_states=encoder.embed(tokens[idx]))
        out.append(rec.tokens[0].reshape(-1, rec.tokens[0].shape[-1]))
    return torch.cat(out)


def train_sae(acts: torch.Tensor, expansion: int, k: int, steps: int, batch: int, lr: float, seed: int,
              log: list[dict[str, Any]], on_step: StepFn | None = None) -> tuple[SparseAutoencoder, dict[str, float]]:
    """A top-k SAE (as sparsify trains them): unit-norm decoder rows, b_dec at the data mean, MSE on TopK codes."""
    torch.manual_seed(seed)
    d_in = acts.shape[1]
    d_sae = d_in * expansion
    W_dec = torch.randn(d_sae, d_in)
    W_dec = (W_dec / W_dec.norm(dim=1, keepdim=True)).requires_grad_(True)
    W_enc = W_dec.detach().clone().requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = acts.mean(0).clone().requires_grad_(True)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    variance = acts.var(0).sum()
    fired = torch.zeros(d_sae, dtype=torch.bool)
    for step in range(steps):
        x = acts[torch.randint(len(acts), (batch,), generator=gen)]
        pre = torch.relu((x - b_dec) @ W_enc.T + b_enc)
        top = pre.topk(k, dim=-1)
        z = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        fired[top.indices.unique()] = True
        loss = ((z @ W_dec + b_dec - x) ** 2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
        if on_step is not None:
            on_step(step + 1, steps)
        if (step + 1) % 200 == 0 or step + 1 == steps:
            log.append({"step": step + 1, "fvu": round(float(loss.detach() / variance), 5)})
            print(f"sae {log[-1]}", file=sys.stderr, flush=True)
    sae = SparseAutoencoder(W_enc=W_enc.detach(), b_enc=b_enc.detach(), W_dec=W_dec.detach(), b_dec=b_dec.detach(),
                            pre_bias=b_dec.detach(), activation="topk", k=k, hookpoint="unet." + HOOKPOINT)
    with torch.no_grad():
        recon = sae.reconstruct(acts)
        fvu = float(((recon - acts) ** 2).sum(-1).mean() / variance)
        live = (sae.encode(acts) > 0).any(0)
    return sae, {"fvu": round(fvu, 4), "dead_latents": int((~live).sum()), "never_fired_in_training": int((~fired).sum())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lvo_core.toy.train", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="lvo_core/toy/weights", help="folder for the trained world")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--steps", type=int, default=4000, help="diffusion training steps")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sae-steps", type=int, default=3000)
    p.add_argument("--sae-tokens", type=int, default=4096, help="noised latents whose block tokens train the SAE")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def phase(text: str) -> None:
        print(f"[train] {text} … ({time.perf_counter() - start:.0f} s so far)", file=sys.stderr, flush=True)

    phase(f"{args.images} dataset images and the patch codec")
    data = make_dataset(args.images, args.seed)
    images = torch.from_numpy(data.images).float()
    codec = PatchPCACodec.fit(images)
    codec.save(out / "codec.safetensors")
    latents = codec.encode(images)
    tokens = torch.tensor([parse(p) for p in data.prompts()], dtype=torch.long)
    diffusion_log: list[dict[str, Any]] = []
    phase(f"diffusion model, {args.steps} steps (a line every 100)")
    printer = Printer()
    unet, encoder = train_diffusion(latents, tokens, args.steps, args.batch, args.lr, args.seed, diffusion_log,
                                    on_step=stage(printer, "diffusion training (steps)"))
    copy.deepcopy(unet).half().save_pretrained(str(out / "unet"))  # fp16 on disk: a few MB to ship
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(out / "prompt_encoder.safetensors"))
    phase(f"block activations of {args.sae_tokens} noised latents")
    acts = block_activations(unet, encoder, latents, tokens, args.sae_tokens, args.seed + 1)
    sae_log: list[dict[str, Any]] = []
    phase(f"SAE, {args.sae_steps} steps (a line every 200)")
    sae, sae_stats = train_sae(acts, 8, 8, args.sae_steps, 4096, 1e-3, args.seed + 2, sae_log,
                               on_step=stage(printer, "SAE training (steps)"))
    save_sae(sae, out / "sae" / ("unet." + HOOKPOINT))
    record = {"command": "python -m lvo_core.toy.train " + " ".join(argv if argv is not None else sys.argv[1:]),
              "args": vars(args), "versions": versions(), "seconds": round(time.perf_counter() - start, 1),
              "unet_params": sum(p.numel() for p in unet.parameters()), "codec_channels": codec.channels,
              "diffusion_log": diffusion_log, "sae": {"tokens": len(acts), **sae_stats, "log": sae_log}}
    save_json(record, out / "record.json")
    print(json.dumps({k: v for k, v in record.items() if not k.endswith("log")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
