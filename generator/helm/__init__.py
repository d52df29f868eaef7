"""The helm adapter: the only code that runs helm (binary.py finds it, adapter.py drives it)."""
