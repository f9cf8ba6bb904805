"""``qkt demo``: the whole product on the bundled examples, nothing configured, nothing running,
no network (SPEC §5.7). :class:`~qkt.demo.runner.Demo` runs it and tells a
:class:`~qkt.demo.events.View` what happens; the command line renders that."""

from qkt.demo.events import View
from qkt.demo.examples import DemoError, find_examples
from qkt.demo.runner import Demo, Outcome

__all__ = ["Demo", "DemoError", "Outcome", "View", "find_examples"]
