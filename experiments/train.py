r"""Trains a model.

    python -m experiments.train --config=configs/tiny.py --workdir=runs/tiny
    python -m experiments.train --config=configs/base.py --workdir=s3://bucket/runs/base \
        --config.train.steps=50000 --config.data.path=data/lakh

Writes <workdir>/config.json, checkpoints/ (orbax), metrics.jsonl, tb/
(TensorBoard: `tensorboard --logdir <workdir>`), samples/step_N.{mid,png}.
Run the same command again after an interruption (Ctrl-C, kill -9): it resumes
from the latest checkpoint with the same data order. An s3:// workdir is
trained in a local staging folder and mirrored (docs/training.md, "Workdirs on S3").

Several processes (hosts): the same command in each, with
JAX_COORDINATOR_ADDRESS=host0:port JAX_NUM_PROCESSES=N JAX_PROCESS_ID=i
(docs/training.md, "More than one machine").
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from yoshimidi_jax import compile_cache
from yoshimidi_jax.config import ConfigError
from yoshimidi_jax.sample.step_sample import write_step_sample
from yoshimidi_jax.train import distributed
from yoshimidi_jax.train.loop import NonFiniteError, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "a config file, e.g. configs/tiny.py", lock_config=True)
flags.DEFINE_string("workdir", None, "run folder, or s3://bucket/prefix", required=True)
flags.mark_flags_as_required(["config"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # our INFO lines; orbax/absl only from WARNING (they log every file they touch)
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("yoshimidi_jax").setLevel(logging.INFO)
    try:
        # several processes (JAX_COORDINATOR_ADDRESS, ... or SLURM): start them
        # together before anything below starts a JAX backend
        distributed.initialize(FLAGS.config, FLAGS.workdir)
        compile_cache.enable()  # a resumed run loads its train step instead of compiling it again
        result = train(FLAGS.config, FLAGS.workdir, sample_writer=write_step_sample)
    except (ConfigError, distributed.DistributedError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    print(f"done: step {result.step}, eval loss {result.eval_loss}, workdir {FLAGS.workdir}")


if __name__ == "__main__":
    app.run(main)
