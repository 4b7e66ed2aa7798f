"""Multivariate batch monitoring: multiway PCA models per recipe and unit, T2 / SPE by CV bin."""
