"""Compute kernels: Triton implementations with pure-torch reference twins."""
