"""Native CPU engine: the typed IR lowered to machine code through LLVM, called from JAX via the XLA FFI."""
