import sys

from pipeline.cli import main

code = main()
if "ray" in sys.modules:  # a command that started Ray: stop it here, not in an atexit hook
    from pipeline.execution.stopping import shut_down_ray

    shut_down_ray(code)
sys.exit(code)
