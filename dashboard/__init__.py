"""The read-only web dashboard (`autopeft dashboard`): studies, Pareto fronts, trials, exports.

`create_app(storage_url, token=None)` builds the FastAPI app; nothing is opened at import.
"""

from autopeft.dashboard.app import create_app

__all__ = ["create_app"]
