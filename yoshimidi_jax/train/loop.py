"""The training loop: data -> jitted steps -> metrics, evals, samples,
checkpoints; resumes exactly from the latest checkpoint of its workdir."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable

import jax
import ml_collections
from jax.experimental import multihost_utils
import numpy as np
from tqdm import tqdm

from yoshimidi_jax.data.pipeline import BatchSpec, make_batches, streams_of
from yoshimidi_jax.model import init_params, make_model, model_cost
from yoshimidi_jax.train import mesh as mesh_lib
from yoshimidi_jax.train.checkpoints import RunCheckpoints, abstract_like
from yoshimidi_jax.config import (ConfigError, check_config, differences, load_config, model_vocab, num_streams,
                                  save_config)
from yoshimidi_jax.files import write_atomic
from yoshimidi_jax.train import distributed
from yoshimidi_jax.train.metrics import MetricsWriter, device_peak_flops
from yoshimidi_jax.train.optimizer import learning_rate_at, make_optimizer
from yoshimidi_jax.train.state import TrainState
from yoshimidi_jax.train.step import make_eval_step, make_train_step
from yoshimidi_jax.storage import WorkdirMirror, is_remote, local_staging_dir

log = logging.getLogger(__name__)

# fields a resumed run may change; any other change would break exact resume
# (train.steps may grow: the cosine runs over train.decay_steps, fixed at the first start)
RESUMABLE_CHANGES = ("train.steps", "train.progress", "train.log_every", "train.sample_events",
                     "data.read_threads", "data.prefetch_pieces")


class NonFiniteError(FloatingPointError):
    """The loss or gradient norm stopped being finite."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    step: int  # last step trained
    resumed_from: int | None
    eval_loss: float | None
    workdir: str  # local (staging) workdir


def control_fields(cfg: ml_collections.ConfigDict) -> dict:
    """BatchSpec fields that the config sets (controls, augmentation, how time is written, how the
    data is read ahead)."""
    names = ("p_drop_control_sequence", "p_drop_control_press", "p_drop_control_attribute", "p_drop_style",
             "augment_velocity", "read_threads", "prefetch_pieces")
    return {**{name: cfg.data[name] for name in names}, "vocab": model_vocab(cfg.model)}


def batch_spec(cfg: ml_collections.ConfigDict, split: str) -> BatchSpec:
    """This process's batches: its share of the global batch."""
    per_process = cfg.data.batch_size // jax.process_count()
    spec = BatchSpec(seq_len=cfg.data.seq_len, batch_size=per_process, seed=cfg.seed, **control_fields(cfg))
    if split == "train":
        return dataclasses.replace(spec, max_piece_tokens=cfg.data.get("max_piece_tokens", 0) or None)
    # eval: a fixed order and fixed control dropout, the same every eval
    return dataclasses.replace(spec, seed=cfg.seed + 1, shuffle=False)


def combine_eval(rows: list[dict[str, float]]) -> dict[str, float]:
    """Means over several batches, each weighted by its counts."""
    out: dict[str, float] = {}
    for key in rows[0]:
        if key.startswith("count/"):
            out[key] = float(sum(r[key] for r in rows))
            continue
        family = key.split("/", 1)[1] if key.startswith(("loss/", "accuracy/")) else "token"
        weight_key = f"count/{family}" if f"count/{family}" in rows[0] else "count/token"
        if key in ("loss/time_value", "time_mae_log", "time_mae_s"):
            weight_key = "count/time"
        weights = np.array([r[weight_key] for r in rows])
        values = np.array([r[key] for r in rows])
        out[key] = float((weights * values).sum() / max(weights.sum(), 1.0))
    return out


def _to_host(metrics: dict[str, jax.Array]) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def _resolve_config(cfg: ml_collections.ConfigDict, local: str) -> ml_collections.ConfigDict:
    """The run's config: cfg, with train.decay_steps fixed at the first start
    (so that a resumed run with more train.steps keeps its schedule); refuses
    changes that would break an exact resume. Saves it as config.json."""
    path = os.path.join(local, "config.json")
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    saved = load_config(path) if os.path.exists(path) else None
    if cfg.train.decay_steps == 0:
        cfg.train.decay_steps = saved.train.decay_steps if saved is not None else cfg.train.steps
    if saved is not None:
        changed = [k for k in differences(saved, cfg) if k not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(
                f"{path} holds this run's config and the new one differs in {changed}: "
                "resume with the same config (only " + ", ".join(RESUMABLE_CHANGES) + " may change), "
                "or use a new --workdir"
            )
    if jax.process_index() == 0:
        save_config(cfg, path)
    return cfg


SampleWriter = Callable[[Any, Any, ml_collections.ConfigDict, int, str], str]


def train(cfg: ml_collections.ConfigDict, workdir: str, sample_writer: SampleWriter | None = None) -> TrainResult:
    """Trains cfg in workdir (a folder, or s3://... mirrored from a local
    staging folder). Resumes from the latest checkpoint there, if any.
    sample_writer(model, params, cfg, step, local_workdir) is called after each
    eval (experiments/train.py passes sample.step_sample.write_step_sample:
    samples/step_N.{mid,png}); None: no samples. Several processes:
    distributed.initialize must have run first (experiments/train.py calls it)."""
    distributed.check_initialized()
    mesh = mesh_lib.make_mesh()
    p_index, p_count = jax.process_index(), jax.process_count()
    check_config(cfg, num_devices=mesh.size, num_processes=p_count)

    remote = is_remote(workdir)
    local = local_staging_dir(workdir) if remote else workdir
    os.makedirs(local, exist_ok=True)
    # an s3:// workdir: process 0 alone pulls and uploads; the others share its staging folder
    mirror = WorkdirMirror(workdir, local) if remote and p_index == 0 else None
    if mirror is not None:
        pulled = mirror.restore_latest()
        log.info("workdir %s staged in %s (pulled step %s)", workdir, local, pulled)
    if remote and p_count > 1:
        _check_shared_staging(local, workdir)
    cfg = ml_collections.FrozenConfigDict(_resolve_config(cfg, local))

    model = make_model(cfg.model)
    optimizer = make_optimizer(cfg.train)
    schedule = learning_rate_at(cfg.train)
    cost = model_cost(cfg.model, context=cfg.data.seq_len)
    log.info("%s | %d device(s): %s", cost.summary(), mesh.size, jax.devices()[0].device_kind)

    def init_state() -> TrainState:
        return TrainState.create(init_params(model, jax.random.key(cfg.seed)), optimizer)

    # shardings from shapes alone, then the state made under jit straight into
    # them: with FSDP no device ever holds the whole model
    shapes = jax.eval_shape(init_state)
    params_sharding = mesh_lib.param_sharding(mesh, shapes.params, cfg.train.fsdp)
    state_sharding = mesh_lib.param_sharding(mesh, shapes, cfg.train.fsdp)
    state = jax.jit(init_state, out_shardings=state_sharding)()
    batch_sharding = mesh_lib.batch_sharding(mesh)

    streams_per_process = num_streams(cfg, p_count) // p_count
    log.info("data: process %d of %d reads streams %s of %d", p_index, p_count,
             streams_of(p_index, streams_per_process), streams_per_process * p_count)
    train_iter = iter(make_batches(cfg.data.path, "train", batch_spec(cfg, "train"), p_index, p_count,
                                   streams_per_process))
    eval_iter = iter(make_batches(cfg.data.path, "eval", batch_spec(cfg, "eval"), p_index, p_count,
                                  streams_per_process))
    eval_batches = [next(eval_iter) for _ in range(cfg.train.eval_batches)]

    checkpoints = RunCheckpoints(os.path.join(local, "checkpoints"), cfg.train.keep_checkpoints)
    resumed_from = checkpoints.latest_step()
    start = 0
    if resumed_from is not None:
        state = checkpoints.restore(resumed_from, abstract_like(state, state_sharding), train_iter)
        start = int(state.step)
        log.info("resumed from step %d (%s/checkpoints)", start, local)
    writer = MetricsWriter(local, resume_step=start)

    train_step = make_train_step(model, optimizer, schedule, state_sharding, batch_sharding)
    eval_step = make_eval_step(model, params_sharding, batch_sharding)
    peak = device_peak_flops()
    tokens_per_step = cfg.data.batch_size * cfg.data.seq_len

    def evaluate(step: int) -> float:
        rows = [_to_host(eval_step(state.params, mesh_lib.put_batch(b, mesh))) for b in eval_batches]
        metrics = combine_eval(rows)
        writer.write(step, metrics, prefix="eval/")
        if sample_writer is not None:
            # several processes: every one takes part in gathering the params, process 0 samples
            params = state.params if p_count == 1 else multihost_utils.process_allgather(state.params, tiled=True)
            if p_index == 0:
                try:
                    sample_writer(model, params, cfg, step, local)
                except Exception as e:  # a sample must never stop training
                    log.warning("sample at step %d failed: %s", step, e)
        return metrics["loss"]

    def checkpoint(step: int, eval_loss: float | None) -> None:
        checkpoints.save(step, state, train_iter, ml_collections.ConfigDict(cfg), eval_loss)
        if remote:
            checkpoints.wait()  # every process: orbax finishes a step together
        if mirror is not None:
            # the logs first: a step committed on the remote then always has its metrics up to it there
            # (a kill between the two would otherwise resume from it with steps missing from metrics.jsonl)
            mirror.push_files()
            mirror.push_checkpoint(step)

    bar = tqdm(total=cfg.train.steps, initial=start, desc="train", unit="step",
               disable=not cfg.train.progress or p_index != 0)
    window: list[dict[str, float]] = []
    window_start, paused = time.perf_counter(), 0.0  # paused: eval/sample/checkpoint time, not training
    eval_loss = None
    step = start
    consumed = start  # batches taken from train_iter
    pending = None  # (step, host batch, device metrics): checked one step late, except at boundaries
    try:
        for step in range(start + 1, cfg.train.steps + 1):
            host_batch = next(train_iter)
            consumed = step
            state, metrics = train_step(state, mesh_lib.put_batch(host_batch, mesh))
            if pending is not None:
                window.append(_check_finite(*pending, local=local, last_ckpt=checkpoints.latest_step()))
            pending = (step, host_batch, metrics)
            at_end = step == cfg.train.steps
            log_now = step % cfg.train.log_every == 0 or at_end
            eval_now = step % cfg.train.eval_every == 0 or at_end
            save_now = step % cfg.train.checkpoint_every == 0 or at_end
            if log_now or eval_now or save_now:  # nothing is evaluated or saved unchecked
                window.append(_check_finite(*pending, local=local, last_ckpt=checkpoints.latest_step()))
                pending = None
            if log_now:
                elapsed = time.perf_counter() - window_start - paused
                row = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
                row["tokens_per_s"] = tokens_per_step * len(window) / elapsed
                if peak:
                    row["mfu"] = cost.flops_per_token * row["tokens_per_s"] / (peak * mesh.size)
                row.pop("finite", None)
                writer.write(step, row, prefix="train/")
                bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
                window, window_start, paused = [], time.perf_counter(), 0.0
            if eval_now or save_now:
                pause_start = time.perf_counter()
                step_eval = evaluate(step) if eval_now else None
                eval_loss = step_eval if step_eval is not None else eval_loss
                if save_now:
                    checkpoint(step, step_eval)
                paused += time.perf_counter() - pause_start
            bar.update(1)
    except KeyboardInterrupt:
        # save only a checked state, where the state and the data iterator agree
        # on the step, and that is not saved already
        trained = int(state.step) if not any(x.is_deleted() for x in jax.tree.leaves(state)) else -1
        try:
            if pending is not None and pending[0] == trained:
                _check_finite(*pending, local=local, last_ckpt=checkpoints.latest_step())
                pending = None
            # several processes save together or not at all: an interrupt reaches one
            saveable = pending is None and trained == consumed and trained > start and p_count == 1
        except NonFiniteError:
            saveable = False
        if saveable and trained not in checkpoints.all_steps():
            log.warning("interrupted: saving step %d", trained)
            checkpoint(trained, None)
        else:
            log.warning("interrupted: resume from the last checkpoint (%s)", checkpoints.latest_step())
        raise
    finally:
        bar.close()
        checkpoints.close()
        writer.close()
        if mirror is not None:
            mirror.push_files()
            if not mirror.flush(timeout_s=600):
                log.warning("S3 upload still pending after 600 s: %s", mirror.last_error)
            mirror.close()
    return TrainResult(step=step, resumed_from=resumed_from, eval_loss=eval_loss, workdir=local)


def _check_shared_staging(local: str, workdir: str) -> None:
    """Several processes with an s3:// workdir: process 0 uploads from its
    staging folder, so every process must write into that same folder."""
    token = np.int32(int.from_bytes(os.urandom(3), "little"))  # int32: jax without x64
    token = int(multihost_utils.broadcast_one_to_all(token))
    path = os.path.join(local, ".staging-token")
    if jax.process_index() == 0:
        write_atomic(path, str(token))
    multihost_utils.sync_global_devices("staging token written")
    try:
        with open(path) as f:
            shared = int(f.read()) == token
    except (OSError, ValueError):
        shared = False
    everyone = multihost_utils.process_allgather(np.array([shared]))
    if not everyone.all():
        raise ConfigError(
            f"--workdir={workdir}: process 0 uploads the staging folder {local}, which processes "
            f"{np.flatnonzero(~everyone.ravel()).tolist()} do not share; set YOSHIMIDI_STAGING to a folder "
            "on a filesystem every process sees (or use a shared local --workdir)")


def _check_finite(step: int, host_batch: dict, metrics: Any, local: str, last_ckpt: int | None) -> dict:
    host = _to_host(metrics)
    if not host["finite"]:
        path = os.path.join(local, f"nonfinite_batch_step_{step}.npz")
        np.savez(path, **host_batch)
        raise NonFiniteError(
            f"loss {host['loss']} / grad norm {host['grad_norm']} not finite at step {step}; its batch is in "
            f"{path}; the last good checkpoint is step {last_ckpt}"
        )
    return host
