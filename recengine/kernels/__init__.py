"""Triton kernels (CUDA; on the CPU under TRITON_INTERPRET=1 so CI can test them)."""
