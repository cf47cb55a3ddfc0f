"""Training and sampling with torch.optim.Adam and LambdaLR, mirroring pure.train.Trainer step for step.

The run is defined exactly as pure's: one pure.Rng(seed) shuffles the
documents, then draws the initial weights, then (after training) draws the
samples; documents are used in shuffled order, one per step, cut to
block_size predictions. Only the arithmetic is PyTorch's own.
"""

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR

from pure.data import Tokenizer
from pure.model import GPTConfig, param_shapes, split_flat
from pure.optim import AdamConfig
from pure.rng import Rng
from pure.variants import Variant, lr_factor

from .model import MicroGPT
from .weights import checked_state_dict, init_from_rng, load_pure_params, name_map, to_pure_params

DTYPES = {"float64": torch.float64, "float32": torch.float32}
DEFAULT_ADAM = AdamConfig()  # the seed's: lr 0.01, betas (0.85, 0.99), eps 1e-8
# Intra-op threads for CPU runs. Every tensor here is tiny (at most 64 x 16), so a second thread buys
# nothing and costs OpenMP/BLAS hand-offs. On the 2-core dev machine, 1000 default steps: idle, 1.05 s
# with 1 thread and 1.2 s with 2; with other processes loading the cores (load average ~3), 1.4 s with
# 1 thread but 30-130 s with 2, as the threads wait on each other for every small op.
CPU_THREADS = 1


def resolve_dtype(dtype):
    """torch.float64 / torch.float32, from a dtype or its name; ValueError for anything else."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unsupported dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
        return DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"unsupported dtype {dtype}; choose torch.float64 or torch.float32")
    return dtype


def preload():
    """Pay torch.optim's one-time cost now: its first call imports torch._dynamo (about a second here), which a
    caller with something else to wait for (parity check waits for its trace reader) can overlap."""
    import torch._dynamo  # noqa: F401


def resolve_device(device):
    """A torch.device that exists on this machine; ValueError with the reason otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r} ({e}); use cpu or cuda") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} is not available: torch {torch.__version__} sees no CUDA GPU; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} is not available: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use cpu or cuda")
    return dev


@torch.no_grad()
def sample_ids(model, rng, bos, temperature):
    """Token ids drawn one at a time from softmax(logits / temperature) until BOS or block_size.

    The draw itself is pure.Rng.choices on the probabilities as Python floats, so
    with the same probabilities torch_ref and pure pick the same tokens.
    """
    cache = model.new_cache()
    population = list(range(model.config.vocab_size))
    token, out = bos, []
    for pos in range(model.config.block_size):
        logits = model.forward_cached(token, pos, cache)  # (V,)
        probs = F.softmax(logits / temperature, dim=-1)  # (V,)
        token = rng.choices(population, probs.tolist())
        if token == bos:
            break
        out.append(token)
    return out


def lr_lambda(adam, steps):
    """LambdaLR's factor of the base lr at 0-based step s, for the schedule of `adam`: the seed's linear decay
    1 - s / steps (the same expression as pure's Adam.lr_at), a variant's cosine or constant, or a custom
    schedule's traced rates (its base lr is 1, so the factor is the rate itself; a step past them gets nan, so an
    update without a traced rate can never pass)."""
    if adam.lr_schedule == "linear":
        return lambda step: 1 - step / steps
    if adam.lr_schedule == "custom":
        rates = adam.rates
        return lambda step: rates[step] if 0 <= step < len(rates) else math.nan
    schedule = adam.lr_schedule
    return lambda step: lr_factor(schedule, step, steps)


def make_optimizer(model, adam, steps):
    """torch.optim.Adam with the seed's hyper-parameters, and LambdaLR for its linear decay to zero over `steps`:
    the one place both are built (training, `parity run`, `parity check`). A declared variant's weight decay is
    torch.optim.AdamW's, its schedule another LambdaLR (its gradient clipping: TorchTrainer.update)."""
    # foreach=False: the plain per-parameter loop (_single_tensor_adam), which is also what CPU tensors get by
    # default. On CUDA the default would be the multi-tensor (foreach) kernels; pinning the single-tensor path
    # keeps one documented update rule on every device, and with six small weight matrices there is no speed to
    # gain from batching them.
    base_lr = 1.0 if adam.lr_schedule == "custom" else adam.lr
    kwargs = dict(lr=base_lr, betas=(adam.beta1, adam.beta2), eps=adam.eps, foreach=False)
    if adam.weight_decay:
        optimizer = torch.optim.AdamW(model.parameters(), weight_decay=adam.weight_decay, **kwargs)
    else:
        optimizer = torch.optim.Adam(model.parameters(), **kwargs)
    # At 0-based step s the lr is lr * (1 - s / steps): LambdaLR multiplies the base lr by the factor, the same
    # expression as pure's Adam.lr_at.
    scheduler = LambdaLR(optimizer, lr_lambda=lr_lambda(adam, steps))
    return optimizer, scheduler


def _named(values, config):
    """name -> rows (or arrays), from such a dict or from a flat list (or array) in the seed's order."""
    if isinstance(values, dict):
        return values
    if isinstance(values, np.ndarray):  # views, no copy: cut by the shapes
        out, at = {}, 0
        for name, (rows, cols) in param_shapes(config).items():
            out[name] = values[at:at + rows * cols].reshape(rows, cols)
            at += rows * cols
        return out
    return split_flat(list(values), config)


class TorchTrainer:
    """One run's state; `train_step` is one step of the seed's loop (see pure.train.Trainer).

    `TorchTrainer(docs, ...)` draws everything from the seed, as pure does; `TorchTrainer.from_params(config,
    params, ...)` starts from given weights with no documents, for replaying another implementation's run (its
    steps then take token lists: `forward_backward(tokens)`, `set_grads`, `update`)."""

    def __init__(self, docs, *, seed=42, steps=1000, n_layer=1, n_embd=16, n_head=4, block_size=16,
                 adam=None, dtype=torch.float64, device="cpu", num_threads=CPU_THREADS, variant=None):
        if not docs:
            raise ValueError("no documents to train on")
        self.rng = Rng(seed)
        self.seed = seed
        self.docs = list(docs)
        self.rng.shuffle(self.docs)
        self.tokenizer = Tokenizer.from_docs(self.docs)
        variant = variant or Variant()
        variant.check_docs(len(self.docs))
        self._build(GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size,
                              vocab_size=self.tokenizer.vocab_size, **variant.model_fields()), steps,
                    adam or variant.adam_config(), dtype, device, num_threads, variant)
        init_from_rng(self.model, self.rng)  # the same draws as pure, right after the shuffle

    @classmethod
    def from_params(cls, config, params, *, steps=1000, adam=DEFAULT_ADAM, dtype=torch.float64, device="cpu",
                    num_threads=CPU_THREADS, variant=None):
        """A trainer holding `params` (name -> rows, or a flat list in the seed's order) and no documents. The
        model's variant is the config's; `variant` adds the loss's reduction over several documents."""
        self = cls.__new__(cls)
        self.rng = self.seed = self.tokenizer = None
        self.docs = []
        self._build(config, steps, adam, dtype, device, num_threads, variant or Variant())
        self.load_params(params)
        return self

    def _build(self, config, steps, adam, dtype, device, num_threads, variant):
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.dtype, self.device = resolve_dtype(dtype), resolve_device(device)
        if num_threads is not None and self.device.type == "cpu":
            torch.set_num_threads(num_threads)  # process-wide; pass num_threads=None to keep torch's setting
        self.config = config
        self.model = MicroGPT(config).to(device=self.device, dtype=self.dtype)
        self.steps = steps
        self.adam = adam
        self.variant = variant  # docs_per_step and loss_reduction (the model's and optimizer's parts are above)
        self.optimizer, self.scheduler = make_optimizer(self.model, adam, steps)

    @property
    def num_params(self):
        return sum(p.numel() for p in self.model.parameters())

    def lr_at(self, step):
        """The learning rate used at the 0-based `step`: LambdaLR's own base_lr * lr_lambda(step)."""
        return self.scheduler.base_lrs[0] * self.scheduler.lr_lambdas[0](step)

    def tokens_at(self, step):
        """The 0-based step's document, tokenized: documents are used in shuffled order, cycling."""
        return self.tokenizer.encode(self.docs[step % len(self.docs)])

    def docs_at(self, step):
        """The 0-based step's documents, tokenized: docs_per_step of them, the next ones in shuffled order."""
        return [self.tokenizer.encode(doc) for doc in self.variant.docs_of_step(self.docs, step)]

    def loss_of(self, tokens):
        """(loss, logits (n, V)): the mean cross-entropy of predicting tokens[1:n+1] from tokens[:n],
        n = min(block_size, len - 1). `tokens` may be several documents (a list of id lists, a variant's
        docs_per_step): then the loss is the variant's reduction over them and the logits are theirs, stacked."""
        if tokens and isinstance(tokens[0], (list, tuple)):
            return self._loss_of_docs(tokens)
        n = min(self.config.block_size, len(tokens) - 1)
        ids = torch.tensor(tokens[:n + 1], device=self.device)  # (n+1,)
        logits = self.model(ids[:-1])  # (n, V)
        return F.cross_entropy(logits, ids[1:]), logits  # mean over the n positions

    def _loss_of_docs(self, docs):
        """Several documents, one forward each (the model sees one document at a time): token_mean is the mean over
        every predicted position, doc_mean the mean of each document's mean."""
        losses, logits = [], []
        for tokens in docs:
            n = min(self.config.block_size, len(tokens) - 1)
            ids = torch.tensor(tokens[:n + 1], device=self.device)  # (n+1,)
            out = self.model(ids[:-1])  # (n, V)
            reduction = "mean" if self.variant.loss_reduction == "doc_mean" else "sum"
            losses.append(F.cross_entropy(out, ids[1:], reduction=reduction))
            logits.append(out)
        total = torch.stack(losses).sum()
        count = len(docs) if self.variant.loss_reduction == "doc_mean" else sum(len(x) for x in logits)
        return total / count, torch.cat(logits)  # (sum of n, V)

    def forward_backward(self, tokens):
        """(loss, logits) of the document `tokens` (or documents), with its gradient in every parameter's .grad (no
        update)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self.loss_of(tokens)
        loss.backward()
        return loss, logits

    def set_grads(self, grads):
        """Put given gradients (name -> rows, or flat in the seed's order) in .grad, for the next update: `parity
        check` judges a port's optimizer on the port's own gradients."""
        params = self.params_by_name()
        for name, rows in _named(grads, self.config).items():
            p = params[name]
            # a copy (np.array): the update may scale .grad in place (a variant's clipping), never the caller's numbers
            p.grad = torch.from_numpy(np.array(rows, dtype=np.float64)).to(dtype=p.dtype, device=p.device)

    def load_params(self, params):
        """Set every weight (name -> rows of floats or Values, or flat in the seed's order), exactly (rounded for
        float32)."""
        load_pure_params(self.model, _named(params, self.config), self._checked_state_dict)

    def update(self):
        """One Adam update with the current lr (the gradients clipped first, when the variant clips), then move the
        schedule on to the next step's lr."""
        if self.adam.grad_clip is not None:
            if self.adam.grad_clip_eps == 1e-6:  # clip_grad_norm_'s own: max_norm / (norm + 1e-6)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.adam.grad_clip, foreach=False)
            else:  # another guard (ports that scale by max_norm / norm): the same norm, the scale written out
                grads = [p.grad for p in self.model.parameters() if p.grad is not None]
                norm = torch.nn.utils.get_total_norm(grads, foreach=False)
                scale = torch.clamp(self.adam.grad_clip / (norm + self.adam.grad_clip_eps), max=1.0)
                for g in grads:
                    g.mul_(scale)
        self.optimizer.step()
        self.scheduler.step()

    def train_step(self, step, on_grads=None):
        """Forward, backward and one Adam update; returns the loss as a float. on_grads(trainer), if given, is
        called between the backward and the update."""
        if self.scheduler.last_epoch != step:  # the lr comes from the scheduler's position, not from `step`
            raise ValueError(f"train_step({step}) but the schedule is at step {self.scheduler.last_epoch}; "
                             "steps run in order from 0 (or after load_state_from_pure)")
        tokens = self.tokens_at(step) if self.variant.docs_per_step == 1 else self.docs_at(step)
        loss, _ = self.forward_backward(tokens)
        if on_grads:
            on_grads(self)
        self.update()
        return loss.item()

    def flat_values(self, attr="data"):
        """Every parameter's value (or gradient) as floats, in the seed's order (the port-trace layout)."""
        out = []
        for p in self.params_by_name().values():
            t = p if attr == "data" else p.grad
            out += t.detach().cpu().double().reshape(-1).tolist()
        return out

    def sample(self, n, temperature):
        return [self.tokenizer.decode(sample_ids(self.model, self.rng, self.tokenizer.bos, temperature))
                for _ in range(n)]

    def export_params(self):
        """name -> rows of floats (the checkpoint layout, shared with pure)."""
        return to_pure_params(self.model)

    @functools.cached_property
    def _checked_state_dict(self):  # as _param_map: the same tensors for the trainer's life; a lockstep step loads
        return checked_state_dict(self.model)  # weights every step, and a state_dict costs more than the copy

    @functools.cached_property
    def _param_map(self):
        named = dict(self.model.named_parameters())
        return {name: named[key] for name, key in name_map(self.config.n_layer, self.config.tie_embeddings).items()}

    def params_by_name(self):
        """pure name -> this model's parameter tensor (the same tensors for the trainer's life, weights being loaded
        in place: the map is built once, and parity asks for it several times a step)."""
        return dict(self._param_map)

    def adam_state(self):
        """pure name -> (exp_avg rows, exp_avg_sq rows) as floats; zeros before the first step."""
        out = {}
        for name, p in self.params_by_name().items():
            state = self.optimizer.state.get(p, {})
            m, v = (state.get(k, torch.zeros_like(p)) for k in ("exp_avg", "exp_avg_sq"))
            out[name] = (m.detach().cpu().double().tolist(), v.detach().cpu().double().tolist())
        return out

    def load_state_from_pure(self, pure_trainer, steps_done):
        """Continue from a pure.train.Trainer that has completed `steps_done` steps (see load_state)."""
        if pure_trainer.config != self.config:
            raise ValueError(f"pure trainer's config {pure_trainer.config} differs from {self.config}")
        self.load_state(pure_trainer.params, pure_trainer.optimizer.m, pure_trainer.optimizer.v, steps_done)

    def load_state(self, params, m, v, steps_done):
        """Weights, Adam moments (flat, in the seed's order, as pure's Adam keeps them), Adam's step count and the
        lr schedule's position after `steps_done` steps, as if resuming a PyTorch checkpoint. Works before or
        after this trainer's first step."""
        if not 0 <= steps_done <= self.steps:
            raise ValueError(f"steps_done must be in 0..{self.steps}, got {steps_done}")
        self.load_params(params)
        # Optimizer state_dict layout: "state" is keyed by the parameter's index in param_groups[0]["params"].
        index = {id(p): i for i, p in enumerate(self.optimizer.param_groups[0]["params"])}
        m_rows, v_rows = _named(m, self.config), _named(v, self.config)
        state = {}
        for name, p in self.params_by_name().items():
            state[index[id(p)]] = {
                # Adam's own step counter: a CPU scalar of the default float dtype, as Adam creates it.
                "step": torch.tensor(float(steps_done)),
                "exp_avg": torch.tensor(m_rows[name], dtype=torch.float64),
                "exp_avg_sq": torch.tensor(v_rows[name], dtype=torch.float64),
            }
        optimizer_state = self.optimizer.state_dict()
        optimizer_state["state"] = state  # load_state_dict casts the moments to each parameter's dtype and device
        for group in optimizer_state["param_groups"]:
            group["lr"] = self.lr_at(steps_done)
        self.optimizer.load_state_dict(optimizer_state)
        scheduler_state = self.scheduler.state_dict()
        scheduler_state["last_epoch"] = steps_done
        scheduler_state["_last_lr"] = [self.lr_at(steps_done)] * len(self.optimizer.param_groups)
        self.scheduler.load_state_dict(scheduler_state)


def sample_checkpoint(ckpt, rng, n, temperature, dtype=torch.float64, device="cpu"):
    """Samples from a checkpoint's weights (pure's JSON format), drawing from `rng`."""
    model = MicroGPT(ckpt.config).to(device=resolve_device(device), dtype=resolve_dtype(dtype))
    load_pure_params(model, ckpt.params)
    model.eval()
    tokenizer = Tokenizer(ckpt.chars)
    return [tokenizer.decode(sample_ids(model, rng, tokenizer.bos, temperature)) for _ in range(n)]
