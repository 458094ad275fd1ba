"""Settings for worker and beat subprocesses spawned by the tests: the test
settings (stream addresses may only point at loopback), with the runtime's
INFO lines logged and each line stamped with its unix time, so a test can read
from the log when each runner started and ended."""

from visionaire_site.settings_test import *  # noqa: F403

LOGGING["root"]["level"] = "INFO"  # noqa: F405
LOGGING["formatters"]["plain"]["format"] = (  # noqa: F405
    "%(created).3f %(levelname)s %(name)s [%(threadName)s] %(message)s"
)
