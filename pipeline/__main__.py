import atexit
import os
import sys

from pipeline.cli import main

code = main()
if "ray" in sys.modules:  # a command that started Ray: stop it here, not in an atexit hook
    from pipeline.execution.stopping import shut_down_ray

    shut_down_ray(code)  # from here a stop signal ends the process with `code`
    # Python's own teardown (a second and a half with torch, Ray and MLflow loaded) first
    # puts the default signal handlers back: a Ctrl-C or SIGTERM then ended a finished sweep
    # with -2 / -15. The exit hooks run here instead, under ours, and that teardown, which
    # has nothing left to write, is skipped.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
