"""System norms of a linear RNN and of a discretised diagonal SSM: H2, H-infinity, Hankel singular values."""

import numpy as np
import dynmem as dm

model = dm.LinearRNN.random(16, 1, spectral_abscissa=-0.2, rng=0)
hinf = dm.hinf_norm(model)
print(f"LinearRNN: H2 = {dm.h2_norm(model):.6g}, H-inf = {hinf.norm:.6g} at omega = {hinf.frequency:.4g}")
print("  Hankel singular values:", np.array2string(dm.hankel_singular_values(model)[:5], precision=4))
ssm = dm.DiagonalSSM.random(8, 1, rng=1, feedthrough=True).discretize(0.5)
hd = dm.hinf_norm(ssm)
print(f"discrete SSM: H2 = {dm.h2_norm(ssm):.6g}, H-inf = {hd.norm:.6g} at theta = {hd.frequency:.4g} rad/step")
