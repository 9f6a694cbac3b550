"""The Lambda handlers, one folder per function (each folder is a function's CodeUri).

This file and the folders' `__init__.py` only make the handlers a package for the import
contracts and mypy (`functions.<name>.handler`); Lambda loads each `handler.py` as a top-level
module, and a handler imports nothing but the layer (`tandem_common`) and Powertools.
"""
