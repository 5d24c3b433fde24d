"""The one training-loop skeleton of the package (prior and emulator).

``Trainer.run`` owns the loop: learning rate, loss, finiteness check, backward,
gradient-norm clipping, optimiser step, the running loss curve, the progress bar
and the checkpoint cadence; the record it keeps (``step``, ``loss``,
``wall_seconds``) is what a resumed run continues from. A subclass fills the
steps that differ: :meth:`learning_rate`, :meth:`loss`, :meth:`after_step` (the
prior's EMA) and :meth:`save` (a checkpoint directory, with a validation loss for
the emulator).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dafusion.progress import null_progress


class Trainer:
    """Subclass and fill the four hooks; ``run(progress)`` returns the record."""

    name = "model"

    def __init__(self, parameters: list[torch.nn.Parameter], optimiser: torch.optim.Optimizer,
                 *, total_steps: int, grad_clip: float, log_every: int, checkpoint_every: int,
                 record: dict[str, Any]):
        self.parameters, self.optimiser = parameters, optimiser
        self.total_steps, self.grad_clip = total_steps, grad_clip
        self.log_every, self.checkpoint_every = log_every, checkpoint_every
        self.record = record

    def learning_rate(self, step: int) -> float:
        raise NotImplementedError

    def loss(self, step: int) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """After every optimiser step (e.g. an EMA update)."""

    def save(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def run(self, progress: Callable[..., Any] | None = None) -> dict[str, Any]:
        record, recent = self.record, []
        started = time.perf_counter() - record["wall_seconds"]
        with (progress or null_progress)(self.total_steps, f"{self.name} train") as bar:
            bar.update(record["step"])
            for step in range(record["step"], self.total_steps):
                for group in self.optimiser.param_groups:
                    group["lr"] = self.learning_rate(step)
                loss = self.loss(step)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{self.name} training: loss is {loss.item()} at "
                                             f"step {step}")
                self.optimiser.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.parameters, self.grad_clip)
                self.optimiser.step()
                self.after_step()
                recent.append(loss.item())
                record["step"] = step + 1
                bar.update(1)
                if record["step"] % self.log_every == 0:
                    record["loss"].append([record["step"], float(np.mean(recent))])
                    bar.set_postfix(loss=f"{np.mean(recent):.4f}")
                    recent = []
                if (record["step"] % self.checkpoint_every == 0
                        or record["step"] == self.total_steps):
                    record["wall_seconds"] = time.perf_counter() - started
                    self.save(record)
        return record
