"""Run the real `vllm-omni` console script up to, and not past, its argument parsing.

Runs with the Python of a throwaway venv holding the real vllm-omni and vLLM wheels
(scripts/capture-upstream.sh). The command line is parsed and validated exactly as the console script
does it; where it would start serving, this prints one `PROBE-PARSED {json}` line and exits 0, so an
accepted command line costs no GPU and no model. A refused one ends as the real CLI ends (argparse's
`vllm-omni: error: ...` and exit 2, or a traceback).

    python upstream_probe.py CONSOLE_SCRIPT_PATH ARG...
    python upstream_probe.py --batch CONSOLE_SCRIPT_PATH CASES_JSON OUT_DIR

--batch: CASES_JSON maps a case name to its argument list. vLLM is imported once, then every case runs
in a forked child (a fresh process as far as the parser is concerned) with its stdout, stderr and exit
code written to OUT_DIR/<name>.{out,err,rc}: one import instead of one per case (about 40 s each).
"""

import json
import os
import sys
import traceback


def parsed(args):
    fields = ("model", "model_tag", "tokenizer_mode", "port", "host", "omni")
    found = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    print("PROBE-PARSED " + json.dumps(found, default=str, sort_keys=True), flush=True)
    sys.exit(0)


def stop_before_serving():
    # Both paths bind `dispatch_function=cmd.cmd` when their subparsers are built: replace `cmd` first.
    import vllm.entrypoints.cli.serve as vllm_serve

    vllm_serve.ServeSubcommand.cmd = staticmethod(parsed)
    import vllm_omni.entrypoints.cli.serve as omni_serve

    omni_serve.OmniServeCommand.cmd = staticmethod(parsed)


def tell_vllm_its_platform():
    # Without a GPU, vLLM's auto-detection leaves UnspecifiedPlatform and its parser raises "Failed to
    # infer device type" (vLLM 0.18); vllm-omni 0.30 falls back to the CPU platform the same way itself
    # (vllm_omni/entrypoints/cli/serve.py, _ensure_vllm_platform).
    from vllm import platforms

    if platforms.current_platform.is_unspecified():
        from vllm.platforms.cpu import CpuPlatform

        platforms.current_platform = CpuPlatform()
    # vllm-omni 0.20 - 0.28 count devices at import (vllm_omni/diffusion/envs.py, flash-attn check), and
    # their UnspecifiedOmniPlatform raises NotImplementedError there: a box without a GPU has 0 devices.
    try:
        from vllm_omni.platforms.interface import UnspecifiedOmniPlatform
    except ImportError:
        return
    try:
        UnspecifiedOmniPlatform.get_device_count()
    except NotImplementedError:
        UnspecifiedOmniPlatform.get_device_count = classmethod(lambda cls: 0)
    except Exception:  # a version whose method takes arguments or needs more: leave it as it is
        pass


def run_case(console, args, out_dir, name):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for fd, suffix in ((1, "out"), (2, "err")):
                target = os.open(os.path.join(out_dir, f"{name}.{suffix}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(target, fd)
            sys.argv = [console, *args]
            from vllm_omni.entrypoints.cli.main import main as console_main

            console_main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, int) and exc.code is not None:
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    with open(os.path.join(out_dir, f"{name}.rc"), "w") as handle:
        handle.write(f"{os.waitstatus_to_exitcode(status)}\n")


def main():
    batch = sys.argv[1] == "--batch"
    console = sys.argv[2] if batch else sys.argv[1]
    tell_vllm_its_platform()
    stop_before_serving()
    import vllm.entrypoints.cli.main  # noqa: F401  (the heavy imports, once, before any fork)
    import vllm_omni.entrypoints.cli.main

    if not batch:
        sys.argv = [console, *sys.argv[2:]]
        vllm_omni.entrypoints.cli.main.main()
        return
    with open(sys.argv[3]) as handle:
        cases = json.load(handle)
    for name, args in cases.items():
        run_case(console, args, sys.argv[4], name)


if __name__ == "__main__":
    main()
