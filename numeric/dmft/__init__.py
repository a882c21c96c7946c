"""Dynamical mean-field theory (DMFT) of the `full_batch` protocol (docs/DMFT.md).

`engine.run_dmft` solves the discrete-time DMFT of gradient descent with steps h_k forward in time
(causal, no iteration over the trajectory); `losses` holds the sample-side losses in the reduced
field coordinates; `solve.solve_dmft` turns a setup into MODEL.md's predictions.
"""
