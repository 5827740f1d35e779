"""Optional libraries: the one place that imports them, and the one line that says how to install them.

AdapterHub `adapters` builds the serial and parallel bottleneck adapters, prefix-tuning and mixed
plans (the `autopeft` and `mixed` spaces) and writes the AdapterHub export format. It is the
`autopeft[adapters]` extra, not a core dependency: adapters 1.3 pins transformers ~=4.57.6, while the
core (LoRA and IA3 through peft) runs on transformers 5.x. Nothing imports `adapters` at module import
time; code that needs it calls `require_adapters()` at the point of use, and whatever a user chose that
needs it (a space, a format, a study to refine) is checked before any training starts.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

ADAPTERS_EXTRA = "pip install 'autopeft[adapters]'"


class MissingExtra(ImportError):
    """A chosen feature needs an optional library that is not installed; the message is one line for the user."""


def adapters_available() -> bool:
    """Whether `adapters` is installed (found on the path; not imported)."""
    return importlib.util.find_spec("adapters") is not None


def require_adapters(what: str, alternative: str = "") -> ModuleType:
    """The `adapters` module, imported now; `MissingExtra` saying that `what` needs the extra otherwise.

    `what` names the user's choice, e.g. ``"space 'autopeft' (serial, parallel, prefix)"``;
    `alternative` (e.g. ``"or search the lora space"``) ends the message.
    """
    tail = f"; {alternative}" if alternative else ""
    try:
        return importlib.import_module("adapters")
    except ModuleNotFoundError as exc:
        if exc.name != "adapters":
            raise MissingExtra(_broken(what, exc) + tail) from None
        raise MissingExtra(f"{what} needs AdapterHub `adapters`, which is not installed; {ADAPTERS_EXTRA} "
                           f"(it brings the transformers 4.57 line that adapters requires){tail}") from None
    except ImportError as exc:  # installed, but built for another transformers than the one installed
        raise MissingExtra(_broken(what, exc) + tail) from None


def _broken(what: str, exc: ImportError) -> str:
    import transformers

    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (f"{what} needs AdapterHub `adapters`, which does not import with transformers {transformers.__version__} "
            f"({first[:120]}); {ADAPTERS_EXTRA} installs the versions it needs")
