"""``train`` killed (a real SIGKILL) at its awkward moments: before its first checkpoint, in the middle of writing
one, between writing one and pruning the old ones; and resumed from a checkpoint whose ``state.json`` is broken.
Tiny model, 32x32 images."""

import json
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from primedepth.cli import main
from primedepth.training.trainer import run_training
from primedepth.utils.atomic import is_our_temp

# run_training(CONFIG) in a process that SIGKILLs itself at one point: after step 3's log row ("log"), with the
# step-4 checkpoint written under its temporary name ("write"), or when three checkpoints exist, before the prune
KILLED_TRAINING = """
import os, signal, sys
from primedepth.training import checkpointing, metrics_log
from primedepth.training.trainer import run_training

where = sys.argv[2]
def kill():
    os.kill(os.getpid(), signal.SIGKILL)

scalars = metrics_log.MetricsLog.scalars
write, prune = checkpointing.Checkpointer._write, checkpointing.Checkpointer.prune
def logged(self, step, values, prefix):
    scalars(self, step, values, prefix)
    if where == "log" and prefix == "train" and step == 3:
        kill()
def written(self, folder, step, state, record):
    write(self, folder, step, state, record)
    if where == "write" and step == 4:
        kill()
def pruned(self):
    if where == "prune" and len(list(self.root.glob("step-*"))) == 3:
        kill()
    prune(self)
metrics_log.MetricsLog.scalars, checkpointing.Checkpointer._write = logged, written
checkpointing.Checkpointer.prune = pruned
run_training(sys.argv[1], resume="auto")
"""


def _config(tmp_path, every):
    config = {
        "output_dir": str(tmp_path / "run"),
        "data": {"resolution": [32, 32], "train": [{"kind": "scenes", "length": 8}]},
        "train": {"max_steps": 6, "batch_size": 2},
        "checkpoint": {"every": every, "keep_last": 2},
        "logging": {"every": 1, "tensorboard": False},
        "optim": {"lr": 3e-4},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def _killed(config, where):
    proc = subprocess.run([sys.executable, "-c", KILLED_TRAINING, str(config), where], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


@pytest.mark.slow  # a training process started and killed, then resumed (over 10 s on the 2-core machine)
def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once(tmp_path):
    config = _config(tmp_path, every=1000)
    _killed(config, "log")
    log = tmp_path / "run" / "logs" / "metrics.jsonl"
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3]
    run_training(str(config), resume="auto")
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in rows if r["split"] == "model"] == [0]


@pytest.mark.slow  # a training process started and killed, then resumed (over 10 s on the 2-core machine)
@pytest.mark.parametrize("where", ["write", "prune"])
def test_a_kill_around_a_checkpoint_leaves_keep_last_checkpoints_and_no_temporaries(tmp_path, where):
    config = _config(tmp_path, every=2)
    _killed(config, where)
    checkpoints = tmp_path / "run" / "checkpoints"
    left = sorted(p.name for p in checkpoints.iterdir())
    if where == "write":  # the step-4 checkpoint, complete but under its temporary name
        assert [n for n in left if is_our_temp(checkpoints / n)] and "step-000004" not in left
    else:
        assert left == ["latest", "step-000002", "step-000004", "step-000006"]
    trainer = run_training(str(config), resume="auto")
    assert trainer.step == 6
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-000004", "step-000006"]
    assert not [p for p in (tmp_path / "run").rglob("*") if is_our_temp(p)]


@pytest.mark.parametrize(
    "state, problem",
    [
        ("{", "unreadable (Expecting property name"),
        ("[1, 2]", "expected a JSON object, found list"),
        ('{"step": "two", "ablation": "full"}', "'step' must be an integer >= 0, found 'two'"),
        ('{"step": 2}', "'ablation' must be a name, found None"),
    ],
)
def test_resume_from_a_malformed_state_json_is_one_error_line(tmp_path, state, problem):
    config = _config(tmp_path, every=2)
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000002"
    (checkpoint / "training").mkdir(parents=True)
    (checkpoint / "training" / "state.json").write_text(state)
    result = CliRunner().invoke(main, ["train", str(config), "--resume", str(checkpoint)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {checkpoint / 'training' / 'state.json'}: {problem}")
    assert "Traceback" not in result.output
