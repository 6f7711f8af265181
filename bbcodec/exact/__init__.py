"""The integer coding form of a model: what makes a .bbc file decode on every machine.

Training runs in float; coding runs an exported integer form (``integer_form``):
integer weights with power-of-two channel scales, activations on a fixed grid,
nonlinearities and CDFs from stored tables, frequency tables built in integer
arithmetic. ``docs/EXACTNESS.md`` explains the design, the bounds and the checks.

* :func:`integer_form` — a float model of a shipped architecture -> its integer form;
* :func:`negative_elbo_bits` — what the integer form pays per image (its own −ELBO);
* :class:`MachineBound` — code any float model directly, results tied to the machine.
"""

from bbcodec.exact.bounds import negative_elbo_bits
from bbcodec.exact.export import integer_form, load_integer, save_integer
from bbcodec.exact.machine_bound import MachineBound

__all__ = ["MachineBound", "integer_form", "load_integer", "negative_elbo_bits", "save_integer"]
