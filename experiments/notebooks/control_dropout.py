# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Control dropout: a model that obeys and still plays on its own
#
# Training drops control tokens (Korbak et al. 2023 drop their tags): a whole
# piece loses all its CONTROLs with probability `p_sequence` (the
# unconditional mode), and each remaining press loses its CONTROL with
# probability `p_press`. One model should then follow the controls a player
# gives, *and* play well when given none. This notebook trains the tiny model
# with several rates on the embedded corpus and measures, for each:
#
# - held-out loss (nats per token of music, CONTROL targets left out) with
#   **no** controls (how well it plays unconditioned) and with **every**
#   press's control (how much the controls tell it);
# - control adherence of free sampling to held-out pieces' controls, beside
#   chance (its own unconditioned samples scored against the same targets),
#   and the *agreement* of strict sampling (the probability the model itself
#   gave the choices the strict mask allows).
#
# Everything below calls the library (`yoshimidi_jax.train.loop.train`,
# `eval.heldout.score_heldout`, `eval.adherence.measure_adherence`).

# %% tags=["parameters"]
DATA = "data/m21"  # a prepared dataset (python -m experiments.prepare --source=music21 --out=data/m21)
WORKDIR = "runs/ablations/control_dropout"
STEPS = 800  # training steps per setting (tiny config: ~4 min each on 2 CPU cores)
# (p_sequence, p_press) per run; the training default is (0.1, 0.1)
SETTINGS = [[0.0, 0.0], [0.1, 0.1], [0.3, 0.1], [0.1, 0.3]]
PRESSES = 400  # adherence: presses to aim for per condition
EVAL_BATCHES = 0  # held-out batches scored (0: the whole eval split)
MODEL = {}  # config.model overrides (the tests shrink the model)
SEQ_LEN = 256
SEED = 0

# %%
import json
import logging
import os
import sys

while not os.path.isdir("yoshimidi_jax") and os.getcwd() != "/":
    os.chdir("..")  # the repository root: DATA, WORKDIR and configs/ are relative to it
sys.path.insert(0, os.getcwd())

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from configs.ablation import get_config
from yoshimidi_jax.eval.adherence import measure_adherence
from yoshimidi_jax.restore import restore
from yoshimidi_jax.eval.heldout import eval_spec, score_heldout
from yoshimidi_jax.train.loop import train

logging.getLogger().setLevel(logging.WARNING)
os.makedirs(WORKDIR, exist_ok=True)


# %% [markdown]
# ## Train one model per setting
# A run that is already in its workdir is not trained again (the loop resumes
# at its last step), so the notebook can be re-run cheaply.

# %%
results = []
for p_sequence, p_press in SETTINGS:
    workdir = os.path.join(WORKDIR, f"seq{p_sequence}_press{p_press}")
    cfg = get_config(DATA, STEPS, SEQ_LEN, SEED, MODEL)
    cfg.data.p_drop_control_sequence, cfg.data.p_drop_control_press = p_sequence, p_press
    train(cfg, workdir)
    restored = restore(workdir)
    batches = EVAL_BATCHES or None
    scores = {controls: score_heldout(restored.model, restored.params, DATA,
                                      eval_spec(cfg.data.seq_len, cfg.data.batch_size, controls),
                                      max_batches=batches)
              for controls in ("none", "all")}
    adherence = measure_adherence(restored.model, restored.params, DATA, presses=PRESSES, seed=SEED,
                                  conditions=("heldout", "chance", "strict"))
    results.append({
        "p_sequence": p_sequence, "p_press": p_press, "step": restored.step,
        "loss_unconditioned": scores["none"].nats_per_token, "loss_conditioned": scores["all"].nats_per_token,
        "free": adherence["adherence_heldout"], "chance": adherence["adherence_chance"],
        "agreement": adherence["agreement"], "presses": adherence["presses_heldout"],
    })
    print(json.dumps(results[-1]))
with open(os.path.join(WORKDIR, "results.json"), "w") as f:
    json.dump(results, f, indent=1)

# %% [markdown]
# ## Results

# %%
labels = [f"{r['p_sequence']}/{r['p_press']}" for r in results]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
x = range(len(results))
ax1.plot(x, [r["loss_unconditioned"] for r in results], "o-", label="no controls (plays on its own)")
ax1.plot(x, [r["loss_conditioned"] for r in results], "s-", label="every press's control")
ax1.set_xticks(list(x), labels)
ax1.set_xlabel("dropout p_sequence / p_press")
ax1.set_ylabel("held-out nats per token")
ax1.set_title("Held-out loss")
ax1.legend()
for attribute, style in (("all", "o-"), ("interval", "^--"), ("velocity", "v--")):
    ax2.plot(x, [r["free"][attribute] for r in results], style, label=f"free: {attribute}")
ax2.plot(x, [r["chance"]["all"] for r in results], "k:", label="chance: all")
ax2.plot(x, [r["agreement"] for r in results], "s-", label="strict: agreement")
ax2.set_xticks(list(x), labels)
ax2.set_xlabel("dropout p_sequence / p_press")
ax2.set_ylabel("share")
ax2.set_ylim(0, 1.02)
ax2.set_title("Control adherence (held-out pieces' controls)")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
rows = ["| p_sequence / p_press | loss, no controls | loss, all controls | free adherence (all) | "
        "chance (all) | strict agreement |", "|---|---|---|---|---|---|"]
for label, r in zip(labels, results):
    rows.append(f"| {label} | {r['loss_unconditioned']:.4f} | {r['loss_conditioned']:.4f} | "
                f"{r['free']['all']:.3f} | {r['chance']['all']:.3f} | {r['agreement']:.3f} |")
display(Markdown("\n".join(rows)))

# %%
# the verdict: the best free adherence among the settings whose unconditioned
# loss is within 1% of the best unconditioned loss
best_uncond = min(r["loss_unconditioned"] for r in results)
fair = [r for r in results if r["loss_unconditioned"] <= best_uncond * 1.01]
chosen = max(fair, key=lambda r: r["free"]["all"])
print(f"best unconditioned loss {best_uncond:.4f}; within 1% of it: "
      f"{[(r['p_sequence'], r['p_press']) for r in fair]}; of those the most obedient: "
      f"p_sequence={chosen['p_sequence']}, p_press={chosen['p_press']} "
      f"(free adherence {chosen['free']['all']:.3f}, agreement {chosen['agreement']:.3f})")

# %% [markdown]
# ## Finding
#
# Full-scale run above: 800 steps per setting, the tiny model's layers on the
# embedded corpus, 2 CPU cores, one seed. **Some dropout is needed, and how it
# is split matters little.** Without it the model has never seen a piece with
# no controls: its held-out loss with none is 3.83 nats/token against
# 2.15-2.23 with any dropout, so it cannot play unprompted, while it obeys
# best (free adherence 0.81 against 0.68-0.71). With controls given, dropout
# costs little (1.51 -> 1.52-1.54 nats/token). Between the three dropout
# settings the differences in adherence (0.68-0.71, about 550 presses each,
# a standard error of ~0.02) and in loss (within 4%) are at the noise of one
# seed; the configs keep 0.1 / 0.1, and 0.1 / 0.3 is the one to try first in
# a longer run.
