"""Imported once by the local runner's fork server, so cell processes start warm.

Importing torch, TRL, PEFT and lm-eval takes ~10 s; a study is often hundreds of short
cells. Nothing here may start threads or touch CUDA: processes are forked after it.
"""

import os
import signal
import sys

# Ctrl-C goes to the whole process group: the fork server would die mid-import with a traceback
# over the driver's one-line "interrupted", and every cell forked from it would print another.
# They ignore it (children inherit this); the driver stops its cells itself when interrupted.
# The fork server runs as `python -c ...`; a driver never imports this module.
if sys.argv[:1] == ["-c"]:
    signal.signal(signal.SIGINT, signal.SIG_IGN)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import lm_eval  # noqa: E402,F401
import peft  # noqa: E402,F401
import torch  # noqa: E402,F401
import transformers  # noqa: E402,F401
import trl  # noqa: E402,F401
from lm_eval.models.huggingface import HFLM  # noqa: E402,F401

import oxstudy.evaluation  # noqa: E402,F401
import oxstudy.execute  # noqa: E402,F401
import oxstudy.selfplay  # noqa: E402,F401
import oxstudy.training  # noqa: E402,F401
