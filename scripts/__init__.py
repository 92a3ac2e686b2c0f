"""Operator and developer scripts (run as files: `python scripts/run_stack.py`); a
package only so the import contracts of `make lint` can read them and tests can
import scripts.make_certs."""
