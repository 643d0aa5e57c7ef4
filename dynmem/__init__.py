"""dynmem: recurrent neural networks as dynamical systems."""
