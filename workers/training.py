"""The optimiser and learning-rate schedule every evaluator trains with (one place, so all tasks match).

AdamW without weight decay (torch defaults otherwise: betas (0.9, 0.999), eps 1e-8), a linear warm-up
over the first 6% of the steps, then linear decay to 0 at the last step (as Hugging Face's
``get_linear_schedule_with_warmup``), gradient norm clipped at 1.0 (`optimizer_step`).
"""

from __future__ import annotations

import math

import torch

WARMUP_FRACTION = 0.06
MAX_GRAD_NORM = 1.0


def total_steps(examples: int, batch_size: int, epochs: float, max_steps: int | None) -> int:
    """Optimizer steps of a trial: `max_steps` when set, else `epochs` passes of ceil(examples / batch_size)."""
    return max_steps or max(1, math.ceil(epochs * math.ceil(examples / batch_size)))


def adamw_with_schedule(params: list[torch.nn.Parameter], learning_rate: float, total: int
                        ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW on `params` and its warm-up / linear-decay schedule over `total` steps (call `step()` after each)."""
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    warmup = max(1, int(WARMUP_FRACTION * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    return optimizer, scheduler


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler, scaler,
                   trainable: list[torch.nn.Parameter]) -> None:
    """One update from a scalar `loss`: backward through the (fp16) loss `scaler`, gradient norm of
    `trainable` clipped at `MAX_GRAD_NORM`, optimizer and schedule stepped."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
