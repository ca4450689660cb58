"""Speed on a GPU: the training step recorded once as a CUDA graph, then replayed for every batch.

Machinery, not the lesson: it changes how fast a step runs on an NVIDIA
GPU, not what the step computes. ``fit`` uses it by itself on CUDA (pass
``cuda_graph=False`` to train eagerly) and never on a CPU or Apple's MPS.

Why: our models are so small that the GPU finishes each of a step's ~180
kernels (making the batch, forward, backward, Adam, the lr schedule: ``make
profile`` counts them) in a few microseconds, less time than Python and the
driver take to launch it. A CUDA graph records the launches once and replays
them all with one call. What that asks for:

* fixed memory: every tensor the step touches (weights, gradients, Adam's
  state) keeps its place;
* the batch made inside the graph too: at the start of an epoch the shuffle
  and the augmentation's random numbers for all its images are drawn at once
  (the same distributions as ``FastLoader``'s per-batch draws, other draws),
  and the recorded step reads its batch from them through a counter on the
  GPU (any other loader: each batch is copied into a static input);
* no Python numbers that change: the lr and Adam's beta1 (which the one-cycle
  schedule also moves) become GPU tensors, and the whole schedule is computed
  up front and indexed on the GPU;
* one shape: the last, smaller batch of an epoch runs the same step eagerly.

Adam is written out here (``adam_step``, the textbook update in a dozen
``torch._foreach_*`` calls): ``torch.optim.Adam`` records into a graph only
with a fixed beta1 in some torch versions (2.11 waits for the host on a
tensor beta1), and one-cycle moves beta1 every step. A test checks it against
``torch.optim.Adam`` step by step.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from ..data import FastLoader, make_batch

WARM_UP_STEPS = 3  # before recording: lets cuDNN pick its kernels and Adam create its state


def unsupported_reason(device: torch.device, config) -> str | None:
    """Why the graph cannot be used here, or None if it can."""
    if device.type != "cuda":
        return f"a CUDA graph needs an NVIDIA GPU, this is {device.type}"
    if config.optimizer not in ("adam", "adamw"):
        return f"optimizer {config.optimizer!r}: the graph has its own Adam and AdamW, no other optimizer"
    extras = [name for name in ("label_smoothing", "clip_grad_norm", "ema_decay") if getattr(config, name, 0)]
    if extras:
        return f"{', '.join(extras)}: the graph's step has none of these"
    return None


def graphed_training(model, config, device: torch.device, loader, planned_schedule, say) -> "GraphedTraining | None":
    """``fit``'s one call: a ``GraphedTraining`` where a graph can run (a GPU, Adam), else None and, on CUDA,
    a line saying why. ``planned_schedule(config, steps)`` is ``helpers.train.planned_schedule``."""
    reason = unsupported_reason(device, config)
    if reason is None:
        return GraphedTraining(model, config, len(loader), loader=loader, plan=planned_schedule(config, len(loader)))
    if device.type == "cuda":
        say(f"CUDA graph: not used ({reason})")
    return None


def plan(schedule, epochs: int, steps_per_epoch: int) -> tuple[list[float], list[float]]:
    """Every step's lr and Adam's beta1 (0 for SGD), in order, by stepping ``schedule`` (a
    ``helpers.train.LrSchedule`` on a dummy parameter) as training would: the graph indexes them on the GPU."""
    optimizer = schedule.optimizer
    optimizer.step()  # no gradients, so no change: only tells the scheduler that stepping has begun
    lrs, beta1s = [], []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            group = optimizer.param_groups[0]
            lrs.append(float(group["lr"]))
            beta1s.append(float(group["betas"][0]) if "betas" in group else 0.0)
            schedule.after_batch()
        schedule.after_epoch()
    return lrs, beta1s


class GraphedTraining:
    """Trains ``model`` one epoch at a time like ``helpers.train.train_one_epoch``, replaying a CUDA graph.

    ``capture=False`` runs the same step eagerly (no graph): what the tests
    compare against ordinary training, on any device. Pass the training
    ``loader`` (a ``FastLoader``) to have its batches made inside the graph.
    """

    def __init__(self, model: torch.nn.Module, config, steps_per_epoch: int, *, plan: tuple[list[float], list[float]],
                 capture: bool = True, loader: FastLoader | None = None):
        self.model, self.batch_size = model, config.batch_size
        device = next(model.parameters()).device
        lrs, beta1s = plan  # every step's lr and beta1 (``plan``)
        if len(lrs) != config.epochs * steps_per_epoch:
            raise ValueError(f"the plan has {len(lrs)} steps; config.epochs x steps_per_epoch is "
                             f"{config.epochs * steps_per_epoch}: make it with helpers.train.planned_schedule(config, steps_per_epoch)")
        self.host_lrs = lrs
        self.lrs = torch.tensor(lrs, dtype=torch.float32, device=device)
        self.beta1s = torch.tensor(beta1s, dtype=torch.float32, device=device)
        self.step_index = torch.zeros(1, dtype=torch.long, device=device)
        self.lr = self.lrs[:1].clone().squeeze()
        self.beta1 = self.beta1s[:1].clone().squeeze()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]      # Adam's state, as torch.optim.Adam's
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.adam_t = torch.zeros((), device=device)                    # steps taken, for the bias correction
        self.decoupled = config.optimizer == "adamw"
        self.weight_decay = config.weight_decay
        self.X = torch.zeros(self.batch_size, 1, 28, 28, device=device)  # the static batch
        self.y = torch.zeros(self.batch_size, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.loader = loader if isinstance(loader, FastLoader) and loader.images.device == device else None
        if self.loader is not None:  # the epoch's plan: which image at each position, its random numbers
            n = len(self.loader.labels)
            self.order = torch.arange(n, device=device)
            self.uniform = torch.rand(4, n, device=device)
            self.position = torch.zeros(1, dtype=torch.long, device=device)  # where the next batch starts
            self.offsets = torch.arange(self.batch_size, device=device)
        self.graph = None
        if capture:
            try:
                self.graph = self._capture()
            except RuntimeError as exc:  # e.g. an older torch that cannot record some batch operation
                if self.loader is None:
                    raise
                warnings.warn(f"making the batch inside the CUDA graph failed ({str(exc).splitlines()[0]}); "
                              "copying each batch into it instead", stacklevel=2)
                self.loader = None
                self.graph = self._capture()
        self.steps_done = 0  # counted on the host: the schedule has one entry per step, no more

    def _step(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """One training step, written without a single Python number that changes from step to step."""
        self.lr.copy_(self.lrs.gather(0, self.step_index).squeeze())      # the schedule, indexed on the GPU
        self.beta1.copy_(self.beta1s.gather(0, self.step_index).squeeze())
        self.step_index += 1
        output = self.model(X)
        loss = F.cross_entropy(output, y)
        loss.backward()
        self.adam_step()
        self.loss_sum += loss.detach() * len(y)
        self.correct += (output.argmax(dim=1) == y).sum()

    @torch.no_grad()
    def adam_step(self, beta2: float = 0.999, eps: float = 1e-8) -> None:
        """Adam (or AdamW), as torch.optim.Adam computes it, with lr and beta1 read from GPU tensors."""
        params, grads = self.params, [p.grad for p in self.params]
        lr, beta1 = self.lr, self.beta1
        self.adam_t += 1
        if self.weight_decay and self.decoupled:   # AdamW: shrink the weights
            torch._foreach_mul_(params, 1 - lr * self.weight_decay)
        elif self.weight_decay:                    # Adam: L2 added to the gradient
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        torch._foreach_mul_(self.exp_avgs, beta1)                              # m = beta1 m + (1 - beta1) g
        torch._foreach_add_(self.exp_avgs, torch._foreach_mul(grads, 1 - beta1))
        torch._foreach_mul_(self.exp_avg_sqs, beta2)                           # v = beta2 v + (1 - beta2) g^2
        torch._foreach_addcmul_(self.exp_avg_sqs, grads, grads, value=1 - beta2)
        step_size = lr / (1 - beta1 ** self.adam_t)                            # bias corrections
        denominators = torch._foreach_sqrt(self.exp_avg_sqs)
        torch._foreach_mul_(denominators, torch.rsqrt(1 - beta2 ** self.adam_t))
        torch._foreach_add_(denominators, eps)
        updates = torch._foreach_div(self.exp_avgs, denominators)
        torch._foreach_mul_(updates, -step_size)
        torch._foreach_add_(params, updates)                                   # w -= step_size m / (sqrt(v) + eps)

    def _zero_grad(self, set_to_none: bool) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def plan_epoch(self) -> None:
        """Draw the epoch's shuffle and every image's rotation, shift and zoom, seeded as FastLoader seeds them."""
        loader = self.loader
        generator = loader.next_epoch()
        n = len(loader.labels)
        if loader.shuffle:
            self.order.copy_(torch.randperm(n, device=self.order.device, generator=generator))
        if loader.augments:
            self.uniform.copy_(torch.rand(4, n, device=self.order.device, generator=generator))
        self.position.zero_()

    def batch_at(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch at these positions of the epoch's order (``plan_epoch``): FastLoader's batch, made from GPU indices."""
        loader = self.loader
        rows = self.order.gather(0, positions)
        uniform = self.uniform.index_select(1, positions) if loader.augments else None
        X = make_batch(loader.images.index_select(0, rows), uniform, loader.degrees, loader.translate, loader.scale)
        return X, loader.labels.index_select(0, rows)

    def _step_from_plan(self) -> None:
        X, y = self.batch_at(self.position + self.offsets)
        self.position += self.batch_size
        self._step(X, y)

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream, record one step, then put back every number the warm-up changed."""
        saved = {name: value.clone() for name, value in self.model.state_dict().items()}
        self.model.train()
        self.X.normal_()
        self.y.random_(0, 10)
        step = (lambda: self._step(self.X, self.y)) if self.loader is None else self._step_from_plan
        graph = torch.cuda.CUDAGraph()
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(WARM_UP_STEPS):
                    self._zero_grad(set_to_none=True)
                    step()
            torch.cuda.current_stream().wait_stream(stream)
            self._zero_grad(set_to_none=True)  # the recorded backward writes fresh gradients
            with torch.cuda.graph(graph):
                step()
        finally:
            self._restore(saved)
        return graph

    def _restore(self, saved: dict) -> None:
        # Recording ran nothing; the warm-up did: the weights, BatchNorm's statistics, Adam's state
        # and the counters go back to where they were, in place (the graph keeps their addresses).
        for name, value in self.model.state_dict().items():
            value.copy_(saved[name])
        for tensor in (*self.exp_avgs, *self.exp_avg_sqs, self.adam_t):
            tensor.zero_()  # as a fresh Adam's
        for counter in (self.step_index, self.loss_sum, self.correct, *([self.position] if self.loader else [])):
            counter.zero_()

    def lr_of_next_step(self, step: int) -> float:
        return self.host_lrs[min(step, len(self.host_lrs) - 1)]

    def _check_schedule(self, steps: int) -> None:
        if self.steps_done + steps > len(self.host_lrs):
            raise RuntimeError(f"the schedule was computed for {len(self.host_lrs)} steps (config.epochs x "
                               "batches per epoch); make a new GraphedTraining to train longer")
        self.steps_done += steps

    def train_one_epoch(self, loader) -> tuple[float, float]:
        """(mean loss, running accuracy %) over one pass of ``loader``, as ``train_one_epoch`` returns them."""
        self.model.train()
        self.loss_sum.zero_()
        self.correct.zero_()
        if loader is self.loader and loader is not None:
            return self._epoch_from_plan()
        seen = 0
        for X, y in loader:
            self._check_schedule(1)
            if self.graph is not None and len(y) == self.batch_size:
                self.X.copy_(X)
                self.y.copy_(y)
                self.graph.replay()
            else:  # the last, smaller batch (or no graph): the same step, eagerly, on the same tensors
                self._zero_grad(set_to_none=self.graph is None)
                self._step(X, y)
            seen += len(y)
        return self.loss_sum.item() / seen, 100.0 * self.correct.item() / seen

    def _epoch_from_plan(self) -> tuple[float, float]:
        """One epoch with the batches made inside the graph: one replay per full batch."""
        n, full = len(self.loader.labels), len(self.loader.labels) // self.batch_size
        self._check_schedule(len(self.loader))
        self.plan_epoch()
        for _ in range(full):
            if self.graph is not None:
                self.graph.replay()
            else:  # capture=False: the recorded code, run eagerly
                self._zero_grad(set_to_none=True)
                self._step_from_plan()
        if n > full * self.batch_size:  # the last, smaller batch: the same step, eagerly
            self._zero_grad(set_to_none=False)
            X, y = self.batch_at(torch.arange(full * self.batch_size, n, device=self.order.device))
            self._step(X, y)
        return self.loss_sum.item() / n, 100.0 * self.correct.item() / n
