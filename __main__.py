"""`python -m nstvid ...` runs the `nstvid` command."""
from .cli import main_entry

main_entry()
