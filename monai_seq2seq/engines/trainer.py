"""Source-to-target GAN training with missing sequences on MONAI's ``Trainer`` (ignite engine)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from monai.engines import Trainer
from monai.engines.workflow import Workflow
from monai.inferers import Inferer, SimpleInferer
from torch.func import functional_call
from torch.optim import Optimizer
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from monai_seq2seq.core.precision import resolve_autocast, warn_if_emulated_bf16

from ..losses import Seq2SeqLoss
from ..transforms.slabs import constant_samples
from .batching import MASK_KEY
from .checkpoint import REQUIRED_KEYS
from .state import RNGState

__all__ = ["Seq2SeqTrainer", "scalar_output", "unwrap"]

logger = logging.getLogger(__name__)

_COUNTERS = ("skipped_steps", "uninformative_samples")

SCALAR_KEYS = ("g_loss", "d_loss", "rec_l1", "perceptual", "adversarial", "cycle", "d_real", "d_fake")


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (or the module itself)."""
    return module.module if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else module


def scalar_output(output: Any) -> dict[str, float]:
    """The per-term losses of a :class:`Seq2SeqTrainer` output as floats (for ``TensorBoardStatsHandler`` /
    ``StatsHandler`` ``output_transform``)."""
    if isinstance(output, list):  # decollated
        output = output[0]
    return {k: float(output[k]) for k in SCALAR_KEYS if k in output}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _finite_gradients(module: nn.Module) -> bool:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.stack([g.detach().abs().amax() for g in grads])).all())


class Seq2SeqTrainer(Trainer):
    """Trains a Seq2Seq generator with one PatchGAN discriminator per target sequence (paper eq. 1-3).

    Each iteration draws ONE source ``i`` and ONE target ``j`` among the sequences available in every sample of
    the batch (in every sample of every rank under DDP; all ranks draw the same pair), then

    1. generator step: ``lambda_r L1(G(x_i|j), x_j) + lambda_p perceptual`` and, when ``i != j``,
       ``lambda_adv LSGAN_G(D_j(G(x_i|j))) + lambda_cyc L1(G(G(x_i|j)|i), x_i)``;
    2. discriminator step (``i != j``): ``LSGAN_D(D_j(x_j), D_j(G(x_i|j).detach()))``.

    Args:
        device: training device.
        max_epochs: epochs to run.
        train_data_loader: loader of batches from :func:`~.batching.availability_collate`: one key per sequence,
            (B, T, C, *spatial) in [-1, 1], and ``mask_key`` (B, S) bool.
        generator: the Seq2Seq network (may be DDP-wrapped).
        discriminator: :class:`~monai_seq2seq.networks.SequenceDiscriminators` (may be DDP-wrapped,
            ``find_unused_parameters=True``: only ``D_j`` is used in an iteration).
        g_optimizer, d_optimizer: optimizers of the two networks.
        loss_function: a :class:`~monai_seq2seq.losses.Seq2SeqLoss`.
        sequence_keys: sequence names in code order (the protocol's ``names``).
        epoch_length: iterations per epoch (default: ``len(train_data_loader)``).
        self_recon_prob: probability that ``j == i``. ``None``: uniform over all available ordered pairs
            (``1 / n_available``), as the paper's sum over ``i, j`` in eq. 1.
        amp: mixed precision (autocast). ``amp_dtype``: ``"bfloat16"`` (no scaler; CUDA or CPU, where it pays on
            chips with AVX512-BF16/AMX) or ``"float16"`` (CUDA only, with ``GradScaler``s).
        accumulation_steps: optimizer steps every this many iterations (losses scaled by its inverse).
        ema_decay: keep an exponential moving average of the generator weights (``None``: off).
        train_handlers: ignite/MONAI handlers.
        mask_key: availability-mask key of the batch.
        non_blocking, iteration_update, postprocessing, key_train_metric, additional_metrics, decollate,
        optim_set_to_none: as in MONAI's ``SupervisedTrainer``.
        inferer: runs the generator, ``inferer(x, generator, target)`` (default ``SimpleInferer``).
        rng_transforms: transforms (or dataset) whose random states go into the checkpoint (see
            :class:`~.state.RNGState`).
        extra_state: other objects with ``state_dict``/``load_state_dict`` that belong to the training state,
            by checkpoint key (e.g. ``{"best_model": BestGeneratorSaver(...)}`` of the validation).

    Checkpoints (:meth:`checkpoint_objects`): the networks, optimizers, AMP scalers, EMA, the trainer's iteration
    and counters, the RNG states, the extra states and, when ``train_data_loader`` has a ``state_dict`` (a
    :class:`~.loader.ResumableDataLoader`), the position in the data: a run resumed from a checkpoint of any
    iteration then sees the batches, and draws the pairs, of an uninterrupted run.

    Uninformative samples: a sample whose source or target crop is constant (an all-background crop) is left
    out of the iteration. On a constant input every InstanceNorm divides zero variance by ``sqrt(eps)``, which
    multiplies the gradient by about 300 per layer (measured: |grad| ~ 1e12 for the ``small`` network), enough
    to freeze Adam's step sizes for tens of thousands of iterations or to overflow. When no sample of a batch is
    informative, the iteration still runs its forward and backward passes with the loss scaled by 0 (exact zero
    gradients; DDP ranks stay in step). A step whose gradients are not finite is skipped (all DDP ranks see the
    same all-reduced gradients, so all skip). ``engine.state.uninformative_samples`` and
    ``engine.state.skipped_steps`` count both.

    Output of an iteration (``engine.state.output``): float tensors ``g_loss``, ``d_loss``, ``rec_l1``,
    ``perceptual``, ``adversarial``, ``cycle``, ``d_real``, ``d_fake`` (zeros for terms not used), ints
    ``source``/``target``, and ``pred`` (the detached fake).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader | Sequence,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        loss_function: Seq2SeqLoss,
        sequence_keys: Sequence[str],
        epoch_length: int | None = None,
        self_recon_prob: float | None = None,
        amp: bool = False,
        amp_dtype: str = "bfloat16",
        accumulation_steps: int = 1,
        ema_decay: float | None = None,
        train_handlers: Sequence | None = None,
        mask_key: str = MASK_KEY,
        non_blocking: bool = False,
        iteration_update: Callable | None = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        decollate: bool = False,
        optim_set_to_none: bool = True,
        rng_transforms: Any = None,
        inferer: Inferer | None = None,
        extra_state: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            handlers=None,
            amp=False,
            decollate=decollate,
        )
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}.")
        if self_recon_prob is not None and not 0.0 <= self_recon_prob <= 1.0:
            raise ValueError(f"self_recon_prob must be in [0, 1] or None, got {self_recon_prob}.")
        if amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"amp_dtype must be 'bfloat16' or 'float16', got {amp_dtype!r}.")
        self.generator = generator
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.discriminator = discriminator
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_function = loss_function
        self.sequence_keys = list(sequence_keys)
        self.self_recon_prob = self_recon_prob
        self.accumulation_steps = int(accumulation_steps)
        self.mask_key = mask_key
        self.optim_set_to_none = optim_set_to_none
        self.amp_dtype = torch.bfloat16 if amp_dtype == "bfloat16" else torch.float16
        self.use_amp = resolve_autocast(self.state.device, amp, self.amp_dtype)
        self.autocast_device = "cpu" if self.state.device is None else self.state.device.type
        if self.use_amp:
            warn_if_emulated_bf16(torch.device(self.autocast_device), "Seq2SeqTrainer(amp=True)")
        fp16 = self.use_amp and self.amp_dtype == torch.float16
        self.g_scaler = torch.amp.GradScaler("cuda") if fp16 else None
        self.d_scaler = torch.amp.GradScaler("cuda") if fp16 else None
        self.ema = None
        if ema_decay is not None:
            self.ema = AveragedModel(
                unwrap(generator), multi_avg_fn=get_ema_multi_avg_fn(float(ema_decay)), use_buffers=True
            )
        self.rng_state = RNGState(rng_transforms)
        self.extra_state = dict(extra_state or {})
        clash = set(self.extra_state) & {*REQUIRED_KEYS, "ema", "g_scaler", "d_scaler", "data"}
        if clash:
            raise ValueError(f"extra_state keys {sorted(clash)} are the trainer's own checkpoint keys; rename them.")
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    # ------------------------------------------------------------------ objects for handlers
    def checkpoint_objects(self) -> dict[str, Any]:
        """Everything an exact resume needs, by checkpoint key (see :class:`~.state.TrainingCheckpointSaver`)."""
        objects: dict[str, Any] = {
            "generator": unwrap(self.generator),
            "discriminator": unwrap(self.discriminator),
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
            "trainer": self,
            "rng": self.rng_state,
        }
        if self.ema is not None:
            objects["ema"] = self.ema
        if self.g_scaler is not None:
            objects["g_scaler"] = self.g_scaler
            objects["d_scaler"] = self.d_scaler
        if callable(getattr(self.data_loader, "state_dict", None)):
            objects["data"] = self.data_loader
        objects.update(self.extra_state)
        return objects

    def state_dict(self):  # type: ignore[override]
        """ignite's engine state (iteration, epoch length, max epochs) and the skipped-step counters."""
        state = super().state_dict()
        for key in _COUNTERS:
            state[key] = int(getattr(self.state, key, 0))
        return state

    def load_state_dict(self, state_dict: Mapping) -> None:  # type: ignore[override]
        """Restore :meth:`state_dict` (a checkpoint without the counters leaves them unset)."""
        state = dict(state_dict)
        counters = {key: state.pop(key) for key in _COUNTERS if key in state}
        super().load_state_dict(state)
        for key, value in counters.items():
            if value:
                setattr(self.state, key, int(value))

    def inference_network(self) -> nn.Module:
        """The generator to ship: the EMA copy when EMA is on, else the trained generator (unwrapped)."""
        return self.ema.module if self.ema is not None else unwrap(self.generator)

    def run(self) -> None:  # type: ignore[override]
        """Train (continues from the current state when called again); the AMP scalers are made at init."""
        Workflow.run(self)

    # ------------------------------------------------------------------ pair sampling
    def available_sequences(self, mask: torch.Tensor) -> list[int]:
        """Code indices of the sequences available in every sample of the batch (and of every rank)."""
        common = mask.to(torch.bool).all(0).to(torch.int32)
        if _distributed():
            common = common.to(self.state.device) if dist.get_backend() == "nccl" else common.cpu()
            dist.all_reduce(common, op=dist.ReduceOp.MIN)
        return [int(s) for s in torch.nonzero(common.cpu()).flatten()]

    def sample_pair(self, available: Sequence[int]) -> tuple[int, int]:
        """Draw (source, target) among ``available`` (identical on all ranks: rank 0 draws and broadcasts)."""
        n = len(available)
        i = int(torch.randint(n, ()).item())
        if self.self_recon_prob is None or n == 1:
            j = int(torch.randint(n, ()).item())
        elif torch.rand(()).item() < self.self_recon_prob:
            j = i
        else:
            j = int(torch.randint(n - 1, ()).item())
            j = j + 1 if j >= i else j
        pair = torch.tensor([available[i], available[j]], dtype=torch.int64)
        if _distributed():
            pair = pair.to(self.state.device) if dist.get_backend() == "nccl" else pair
            dist.broadcast(pair, src=0)
        return int(pair[0]), int(pair[1])

    def _autocast(self):
        return torch.autocast(self.autocast_device, dtype=self.amp_dtype, enabled=self.use_amp)

    def _step(self, loss, optimizer, scaler, params_owner: nn.Module, boundary: bool) -> None:
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if boundary:
            if scaler is not None:  # the scaler skips non-finite steps itself
                scaler.step(optimizer)
                scaler.update()
            elif _finite_gradients(params_owner):
                optimizer.step()
            else:
                self.state.skipped_steps = getattr(self.state, "skipped_steps", 0) + 1
                logger.warning(
                    "non-finite gradients of %s at iteration %d: optimizer step skipped.",
                    type(unwrap(params_owner)).__name__,
                    self.state.iteration,
                )
            optimizer.zero_grad(set_to_none=self.optim_set_to_none)

    # ------------------------------------------------------------------ one iteration
    def _iteration(self, engine: Seq2SeqTrainer, batchdata: dict[str, Any]) -> dict:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        mask = torch.as_tensor(batchdata[self.mask_key])
        available = engine.available_sequences(mask)
        if not available:
            warnings.warn("no sequence is available in every sample of this batch: iteration skipped.", stacklevel=2)
            zero = torch.zeros(())
            return {**{k: zero for k in SCALAR_KEYS}, "source": -1, "target": -1}
        i, j = engine.sample_pair(available)
        names = engine.sequence_keys
        x_i = torch.as_tensor(batchdata[names[i]]).to(engine.state.device, non_blocking=engine.non_blocking)
        x_j = torch.as_tensor(batchdata[names[j]]).to(engine.state.device, non_blocking=engine.non_blocking)
        translate = i != j
        boundary = engine.state.iteration % engine.accumulation_steps == 0
        scale = 1.0 / engine.accumulation_steps
        informative = ~(constant_samples(x_i) | constant_samples(x_j))
        if not bool(informative.all()):
            engine.state.uninformative_samples = getattr(engine.state, "uninformative_samples", 0) + int(
                (~informative).sum()
            )
            if bool(informative.any()):
                keep = informative.nonzero().squeeze(1)
                x_i, x_j = x_i[keep], x_j[keep]
            else:
                scale = 0.0  # zero gradients, but the backward passes still run (DDP ranks stay in step)
        engine.generator.train()
        engine.discriminator.train()

        # generator step: D_j's weights enter as constants (functional call on detached parameters)
        d_module = unwrap(engine.discriminator)
        with engine._autocast():
            fake = engine.inferer(x_i, engine.generator, j)
            fake_logits = cycled = None
            if translate:
                frozen = {k: v.detach() for k, v in d_module.named_parameters()}
                frozen.update(dict(d_module.named_buffers()))
                fake_logits = functional_call(d_module, frozen, (fake, j))
                cycled = engine.inferer(fake, engine.generator, i)
            terms = engine.loss_function.generator_terms(fake, x_j, fake_logits, cycled, x_i)
        engine._step(terms["g_loss"] * scale, engine.g_optimizer, engine.g_scaler, engine.generator, boundary)
        if boundary and engine.ema is not None:
            engine.ema.update_parameters(unwrap(engine.generator))

        # discriminator step on D_j
        if translate:
            with engine._autocast():
                real_logits = engine.discriminator(x_j, j)
                fake_logits_d = engine.discriminator(fake.detach(), j)
                d_terms = engine.loss_function.discriminator_terms(real_logits, fake_logits_d)
            engine._step(d_terms["d_loss"] * scale, engine.d_optimizer, engine.d_scaler, engine.discriminator, boundary)
        else:
            zero = terms["g_loss"].new_zeros(())
            d_terms = {"d_loss": zero, "d_real": zero, "d_fake": zero}

        output = {k: v.detach().float() for k, v in {**terms, **d_terms}.items()}
        output.update({"source": i, "target": j, "pred": fake.detach()})
        return output
