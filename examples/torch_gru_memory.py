"""Memory of a GRU trained in PyTorch, analysed with dynmem.

Trains a small ``torch.nn.GRU`` (float64, a few hundred Adam steps) to
reproduce a linear filter with an exponential kernel, converts it with
:func:`dynmem.interop.from_torch` and prints its Heaviside and impulse
memories (``dynmem.memory_function``) at a few step counts.

Run: ``python examples/torch_gru_memory.py`` (needs ``pip install 'dynmem[bench]'``).
"""

import numpy as np
import torch

import dynmem as dm
from dynmem.interop import from_torch

torch.manual_seed(0)
torch.set_num_threads(1)
m, T, batch = 16, 64, 64
rng = np.random.default_rng(0)
X = rng.standard_normal((batch, T, 1))
kernel = 0.3 * np.exp(-0.2 * np.arange(T))
Y = np.stack([np.convolve(x[:, 0], kernel)[:T] for x in X])  # y_k = sum_s rho_s x_{k-s}

gru = torch.nn.GRU(1, m, batch_first=True).double()
head = torch.nn.Linear(m, 1, bias=False).double()
opt = torch.optim.Adam(list(gru.parameters()) + list(head.parameters()), lr=1e-2)
Xt, Yt = torch.tensor(X), torch.tensor(Y)
for it in range(300):
    opt.zero_grad()
    out, _ = gru(Xt)
    loss = torch.mean((head(out)[..., 0] - Yt) ** 2)
    loss.backward()
    opt.step()
print(f"trained: mse {loss.item():.3e}")

cell = from_torch(gru, readout=head)
k = np.array([0, 1, 2, 5, 10, 20, 40])
heav = dm.memory_function(cell, k)
imp = dm.memory_function(cell, k, input="impulse")
print(" k   heaviside   impulse   target |rho_k|")
for i, kk in enumerate(k):
    print(f"{kk:3d}  {heav.values[i]:.4e}  {imp.values[i]:.4e}  {kernel[kk]:.4e}")
