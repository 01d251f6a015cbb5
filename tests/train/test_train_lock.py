"""One run per run folder: a second run into it is refused, a dead run's lock is taken over
(a lock left by a dead process). The DDP case (rank 0 holds the lock) is in test_train_ddp.py."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from train_helpers import TINY_FLAGS, tiny_config

from stc_ext.cli import main
from stc_ext.train import ClassifyTask, ConfigError, Trainer, load_checkpoint, train
from stc_ext.train import lock as lock_module
from stc_ext.train.lock import LOCK_NAME, RunDirLockedError, RunLock


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_run_into_the_same_folder_is_refused(tiny_data, tmp_path):
    out = tmp_path / "run"
    first = Trainer(tiny_config(tiny_data, out, epochs=1), ClassifyTask())
    first.setup()
    holder = json.loads((out / LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    second = Trainer(tiny_config(tiny_data, out, epochs=1, overwrite=True), ClassifyTask())
    with pytest.raises(ConfigError) as info:
        second.setup()
    message = str(info.value)
    assert message.startswith(f"out_dir: {out} is in use by another run: pid {os.getpid()} on")
    assert "give this run another out_dir" in message
    # The refused run touched nothing; the first one runs to its end and lets go.
    result = first.fit()
    assert result.epochs_done == 1 and not (out / LOCK_NAME).exists()
    assert load_checkpoint(out / "last.pt")["config"]["overwrite"] is False
    resumed = train(tiny_config(tiny_data, out, epochs=2, resume=str(out / "last.pt")))
    assert resumed.epochs_done == 2


@pytest.mark.slow  # > 1 s idle; make test runs it
def test_the_lock_is_released_when_a_run_fails(tiny_data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="frames: checkpoint"):
        train(tiny_config(tiny_data, out, resume=str(_make_run(tiny_data, tmp_path)), frames=8))
    assert not (out / LOCK_NAME).exists()
    assert train(tiny_config(tiny_data, out, epochs=1)).epochs_done == 1


def _make_run(tiny_data, tmp_path):
    out = tmp_path / "source"
    train(tiny_config(tiny_data, out, epochs=1))
    return out / "last.pt"


def test_an_out_dir_that_is_a_file_is_named(tiny_data, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("not a folder\n")
    with pytest.raises(ConfigError, match="out_dir: .*a_file is a file, not a folder"):
        train(tiny_config(tiny_data, target))
    code = main(["train", *TINY_FLAGS, "--root", str(tiny_data), "--out-dir", str(target)])
    err = capsys.readouterr().err
    assert code == 1 and f"stc train: error: --out-dir: {target} is a file, not a folder" in err


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": time.time()})
    )
    lock = RunLock(tmp_path).acquire()
    assert lock.stale is not None and lock.stale["host"] == socket.gethostname()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.fixture
def no_flock(monkeypatch):
    """A file system that does not lock (some network ones): only the recorded pid decides."""

    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", refuse)


def test_without_flock_a_live_pid_refuses_and_a_dead_one_is_taken_over(tmp_path, no_flock):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {"pid": sleeper.pid, "host": socket.gethostname(), "command": "stc train"}
        (tmp_path / LOCK_NAME).write_text(json.dumps(record))
        with pytest.raises(RunDirLockedError, match=f"pid {sleeper.pid} on .* holds it"):
            RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = RunLock(tmp_path).acquire()  # the same record, now of a dead process
    assert lock.stale is not None and lock.stale["pid"] == sleeper.pid
    lock.release()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunDirLockedError, match=f"delete {tmp_path / LOCK_NAME}"):
        RunLock(tmp_path).acquire()


@pytest.mark.slow  # a subprocess trains until it is killed
def test_a_concurrent_command_is_refused_and_a_killed_run_resumes(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    flags = [*TINY_FLAGS, "--root", str(tiny_data), "--out-dir", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stc_ext", "train", *flags, "--epochs", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "last.pt").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
        assert main(["train", *flags, "--overwrite", "--epochs", "1"]) == 1
        err = capsys.readouterr().err
        assert f"--out-dir: {out} is in use by another run: pid {proc.pid}" in err
        assert "(stc_ext train --dataset synthetic" in err  # the holder's command
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # A SIGKILLed run leaves its lock file; the next run takes it over and says so.
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == proc.pid
    done = load_checkpoint(out / "last.pt")["epoch"]
    flags_resume = ["--resume", str(out / "last.pt"), "--epochs", str(done + 1)]
    assert main(["train", *flags_resume, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"took over the lock of a run that no longer runs (pid {proc.pid}" in err
    assert not (out / LOCK_NAME).exists()
