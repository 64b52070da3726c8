"""A fork server for the documentation tests: the heavy imports once, then one forked child per command.

A fresh ``python recipes/x.py`` pays ~10 s of CPU for importing torch, Lightning and NeMo; the doc tests run a
dozen commands. This process imports those libraries (not the plugin: each command must import and register it
itself, as a fresh interpreter would), then forks a child for each request, so every command still starts from
the same clean state and cannot leak hydra, logging or registration state into the next one.

Protocol (JSON lines): a request on stdin, ``{"pid": N}`` as soon as the child runs, ``{"rc": N}`` when it ends.
Request: ``cwd``, ``log`` (the child's stdout and stderr go there), ``env`` (added to the environment), and one of
``script`` + ``argv`` (``python script argv...``), ``module`` + ``argv`` (``python -m module argv...``), or
``blocks`` + ``results`` (python sources run in one namespace, in order; a JSON list of per-block tracebacks,
``null`` for success, is written to ``results``).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback

import hydra  # noqa: F401  (imported for their import time only)
import lightning.pytorch  # noqa: F401
import nemo.collections.asr  # noqa: F401
import torch  # noqa: F401


def run_blocks(blocks: list[str], results_path: str) -> int:
    """Each block exec'd in one shared namespace, like pasting them into one interpreter session."""
    namespace: dict = {"__name__": "__main__"}
    results = []
    for i, source in enumerate(blocks):
        print(f"----- python block {i}", flush=True)
        try:
            exec(compile(source, f"<block {i}>", "exec"), namespace)
            results.append(None)
        except BaseException:  # noqa: BLE001  (SystemExit included: a snippet must not exit)
            results.append(traceback.format_exc())
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
    with open(results_path, "w") as f:
        json.dump(results, f)
    return 0


def child(request: dict) -> int:
    os.chdir(request["cwd"])
    os.environ.update(request.get("env", {}))
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # stdin carries the requests: no command may read it
    sys.stdin = open(os.devnull)
    if "blocks" in request:
        return run_blocks(request["blocks"], request["results"])
    try:
        # sys.path[0] as the interpreter sets it: the script's folder for `python x.py`, the cwd for `python -m`
        if "module" in request:
            sys.argv, sys.path[0] = [request["module"], *request["argv"]], os.getcwd()
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        else:
            script = request["script"]
            sys.argv, sys.path[0] = [script, *request["argv"]], os.path.dirname(os.path.realpath(script))
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
        if code is None:
            return 0
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            return 1
        return code
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(request)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
