"""Process analytics: pure functions on numpy arrays, shared by the Dagster assets, the live
bridge (live drift) and `chrom evaluate`.

- `envelope`: golden-batch envelope per recipe, unit, phase and phase-CV bin, and drift of a
  batch against it with a persistence rule.
- `column`: column performance from buffer transitions (moments of dC/dV: plates, HETP,
  asymmetry) and bed permeability by Darcy's law; the elution peak and load breakthrough.
- `scans`: reading-level findings (gaps in the 1 Hz data, flatlined sensors).
- `verdict`: every finding of a batch as one list of alarms, and the batch's verdict.
"""
