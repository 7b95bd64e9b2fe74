"""Placeholder: being written (see kernels/__init__.py for the contract)."""
